package qemutests

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"imagebuilder/imagebuilder/boottest"
	"imagebuilder/imagebuilder/disk"
)

// The negative cases of the harness: it must fail when the image is broken
// and say why, in the report and in JUnit.

// junitDoc is the part of JUnit XML the tests read.
type junitDoc struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, rep *boottest.Report) junitDoc {
	t.Helper()
	var buf bytes.Buffer
	if err := rep.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	var doc junitDoc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit XML does not parse: %v\n%s", err, buf.String())
	}
	return doc
}

// TestHarnessFailingUnitAndCheck boots an image whose kernel command line
// pulls in a unit that fails (systemd.wants= a user runtime directory for a
// user that does not exist) with a passing and a
// failing user check: firstboot still joins, but the failed unit and the
// failed check are reported, with the unit's journal, the check's output
// and the console tail in JUnit.
// failingUnit exists in every systemd image and fails at once: uid 4242
// has no user.
const failingUnit = "user-runtime-dir@4242.service"

func TestHarnessFailingUnitAndCheck(t *testing.T) {
	t.Parallel()
	res, err := buildImageOpts(t, clusterBundle(t, ""), "master", disk.DefaultKernelCmdline+" systemd.wants="+failingUnit)
	if err != nil {
		t.Fatal(err)
	}
	rep := runBoottest(t, boottest.Spec{Image: artifact(t, res, "qcow2"),
		Checks: []string{"true", "echo looking for the file; test -e /etc/no-such-file"}})
	n := rep.Nodes[0]
	if rep.Passed() {
		t.Fatalf("passed with a failed unit and a failed check: %s", n.Verdict())
	}
	requireCase(t, n, boottest.CaseJoined, true)
	requireCase(t, n, boottest.CaseClusterSide, true)
	requireCase(t, n, boottest.CheckCase("true"), true)
	u := requireCase(t, n, boottest.CaseNoFailed, false)
	if !strings.Contains(u.Reason, failingUnit) || !strings.Contains(u.Reason, "4242") {
		t.Errorf("failed units reason does not name %s or quote its journal: %s", failingUnit, u.Reason)
	}
	c := requireCase(t, n, boottest.CheckCase("echo looking for the file; test -e /etc/no-such-file"), false)
	if !strings.Contains(c.Reason, "exited 1") || !strings.Contains(c.Reason, "looking for the file") {
		t.Errorf("failed check reason lacks the exit code or output: %s", c.Reason)
	}
	if !strings.HasPrefix(n.Verdict(), "FAIL "+n.Name) || !strings.Contains(n.Verdict(), "2 of 5 cases failed") {
		t.Errorf("verdict: %s", n.Verdict())
	}
	doc := parseJUnit(t, rep)
	if doc.Tests != 5 || doc.Failures != 2 {
		t.Errorf("JUnit counts tests=%d failures=%d, want 5 and 2", doc.Tests, doc.Failures)
	}
	for _, jc := range doc.Suites[0].Cases {
		if jc.Failure == nil {
			continue
		}
		if jc.Failure.Message == "" || !strings.Contains(jc.Failure.Body, "console tail") || !strings.Contains(jc.Failure.Body, "cluster-firstboot") {
			t.Errorf("JUnit failure of %q lacks the reason or the console tail: %+v", jc.Name, jc.Failure)
		}
	}
	if n.Journal == "" {
		t.Errorf("no journal excerpt kept")
	} else if j, err := os.ReadFile(n.Journal); err != nil || !bytes.Contains(j, []byte(failingUnit)) {
		t.Errorf("journal excerpt %s lacks the failed unit (%v)", n.Journal, err)
	}
}

// TestHarnessHangingBootTimesOut gives a boot far too little time: the
// harness must stop at the timeout, report every case as failed with the
// reason, and leave no QEMU behind.
func TestHarnessHangingBootTimesOut(t *testing.T) {
	t.Parallel()
	img := artifact(t, buildImage(t, clusterBundle(t, ""), "master", "qcow2"), "qcow2")
	artifacts := t.TempDir()
	start := time.Now()
	rep := runBoottest(t, boottest.Spec{Image: img, Timeout: 3 * time.Second, ArtifactsDir: artifacts,
		ExpectConsole: []string{`cluster-firstboot: detected IP`}, Checks: []string{"true"}})
	if took := time.Since(start); took > time.Minute {
		t.Errorf("a 3s timeout took %s", took)
	}
	n := rep.Nodes[0]
	if rep.Passed() {
		t.Fatalf("passed a boot that cannot finish in 3s: %s", n.Verdict())
	}
	j := requireCase(t, n, boottest.CaseJoined, false)
	if !strings.Contains(j.Reason, "timed out after 3s") {
		t.Errorf("reason: %s", j.Reason)
	}
	for _, name := range []string{boottest.ExpectCase(`cluster-firstboot: detected IP`), boottest.CaseNoFailed, boottest.CheckCase("true"), boottest.CaseClusterSide} {
		requireCase(t, n, name, false)
	}
	doc := parseJUnit(t, rep)
	if doc.Failures != len(n.Cases) {
		t.Errorf("JUnit failures %d, want %d", doc.Failures, len(n.Cases))
	}
	assertNoQEMU(t, artifacts)
}

// assertNoQEMU fails if a process still has dir in its command line (every
// QEMU the harness starts names its console log under the artifacts).
func assertNoQEMU(t *testing.T, dir string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if pid == os.Getpid() {
			continue
		}
		t.Errorf("process %d is still running: %s", pid, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
	}
}

// TestHarnessCtrlCKillsEveryVM runs `imagebuilder test` with two nodes,
// interrupts it while they boot, and checks that it exits at once, non-zero,
// with no QEMU left and no overlay left in the artifacts.
func TestHarnessCtrlCKillsEveryVM(t *testing.T) {
	t.Parallel()
	img := artifact(t, buildImage(t, clusterBundle(t, ""), "", "qcow2"), "qcow2")
	bin := filepath.Join(t.TempDir(), "imagebuilder")
	if out, err := exec.Command("go", "build", "-o", bin, "../imagebuilder/cmd/imagebuilder").CombinedOutput(); err != nil {
		t.Fatalf("building the CLI: %v: %s", err, out)
	}
	artifacts := t.TempDir()
	cmd := exec.Command(bin, "test", img, "--nodes", "master=1,agent=1", "--artifacts", artifacts, "--timeout", "10m")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait until both VMs print on their consoles.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		a, _ := os.Stat(filepath.Join(artifacts, "master-1", "console.log"))
		b, _ := os.Stat(filepath.Join(artifacts, "agent-1", "console.log"))
		if a != nil && b != nil && a.Size() > 0 && b.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the VMs printed nothing within 3 minutes:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("imagebuilder test ended early: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Both QEMUs run now.
	procs := 0
	all, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range all {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(artifacts)) && bytes.Contains(b, []byte("qemu-system")) {
			procs++
		}
	}
	if procs != 2 {
		t.Errorf("found %d QEMU processes for the two nodes", procs)
	}
	interrupted := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("interrupted run exited 0:\n%s", out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("imagebuilder test did not exit within 30s of Ctrl-C:\n%s", out.String())
	}
	t.Logf("exited %.1fs after Ctrl-C", time.Since(interrupted).Seconds())
	assertNoQEMU(t, artifacts)
	for _, n := range []string{"master-1", "agent-1"} {
		if _, err := os.Stat(filepath.Join(artifacts, n, "vm")); err == nil {
			t.Errorf("%s: the VM's overlay folder was left behind", n)
		}
	}
}
