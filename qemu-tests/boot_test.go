package qemutests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"imagebuilder/imagebuilder/boottest"
	"imagebuilder/imagebuilder/qemu"
)

const bootTimeout = 6 * time.Minute

var (
	joinedRE  = regexp.MustCompile(`cluster-firstboot: joined cluster demo as master with IP 10\.0\.2\.15`)
	alreadyRE = regexp.MustCompile(`cluster-firstboot: already joined cluster demo as master with IP 10\.0\.2\.15; not joining again`)
	detectRE  = regexp.MustCompile(`cluster-firstboot: detected IP 10\.0\.2\.15`)
	roleRE    = regexp.MustCompile(`cluster-firstboot: role master \(from ([^)]*)\)`)
)

// bootVM starts a VM on disk with the console kept under the test's log dir
// (saved on failure) and killed at the end of the test.
//
//lint:ignore U1000 the helper other boot tests (added beside these) use to drive QEMU directly
func bootVM(t *testing.T, disk string, name string, creds map[string]string) *qemu.VM {
	t.Helper()
	logDir := os.Getenv("IMAGEBUILDER_TEST_LOGS")
	if logDir == "" {
		logDir = t.TempDir()
	}
	console := filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".console.log")
	vm, err := qemu.Start(context.Background(), qemu.Config{
		Disk: disk, Accel: "auto", Memory: 1024, CPUs: 1,
		NICs: []qemu.NIC{{}}, SMBIOSCredentials: creds, ConsoleLog: console,
		Log: testLogger(t),
	})
	if err != nil {
		t.Fatalf("starting VM: %v", err)
	}
	t.Cleanup(func() {
		vm.Kill()
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), filepath.Base(console))
			if data, err := os.ReadFile(console); err == nil {
				os.WriteFile(keep, data, 0o644)
				t.Logf("console log kept at %s", keep)
			}
		}
	})
	return vm
}

// runBoottest runs the boot-test harness on spec with the test's logger
// and artifacts kept under IMAGEBUILDER_TEST_LOGS (or the test's temp dir),
// and logs every node's verdict.
func runBoottest(t *testing.T, spec boottest.Spec) *boottest.Report {
	t.Helper()
	if spec.ArtifactsDir == "" {
		spec.ArtifactsDir = t.TempDir()
		if d := os.Getenv("IMAGEBUILDER_TEST_LOGS"); d != "" {
			spec.ArtifactsDir = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		}
	}
	if spec.Timeout == 0 {
		spec.Timeout = bootTimeout
	}
	rep, err := boottest.Run(context.Background(), testLogger(t), spec)
	if err != nil {
		t.Fatalf("boottest: %v", err)
	}
	for _, n := range rep.Nodes {
		t.Log(n.Verdict())
	}
	return rep
}

// requireCase fails the test unless node n has case name with the wanted
// outcome, and returns it.
func requireCase(t *testing.T, n *boottest.NodeReport, name string, passed bool) boottest.Case {
	t.Helper()
	c, ok := n.Case(name)
	if !ok {
		t.Fatalf("%s: no case %q in %+v", n.Name, name, n.Cases)
	}
	if c.Passed != passed {
		t.Errorf("%s: case %q passed=%v, want %v: %s\nconsole tail:\n%s", n.Name, name, c.Passed, passed, c.Reason, n.ConsoleTail)
	}
	return c
}

// TestBootJoinsOnceUEFI builds a Debian 12 image with the role left to the
// boot, boots it under OVMF through the harness with the role as an SMBIOS
// credential, and asserts that firstboot detected the IP and joined (from
// the console, from the cluster's side and with a check in the guest); then
// boots the same disk again and asserts it does not join a second time.
func TestBootJoinsOnceUEFI(t *testing.T) {
	t.Parallel()
	res := buildImage(t, clusterBundle(t, ""), "", "qcow2")
	img := artifact(t, res, "qcow2")
	// The boots write to a copy-on-write child of the image, like a host's disk.
	disk := filepath.Join(t.TempDir(), "host-disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	spec := boottest.Spec{
		Image: disk, Persistent: true,
		Nodes:         []boottest.Node{{Name: "host", Role: "master"}},
		ExpectConsole: []string{detectRE.String(), roleRE.String()},
		Checks:        []string{"test \"$(cat /var/lib/cluster/ip)\" = 10.0.2.15", "grep -qx ROLE=master /var/lib/cluster/joined"},
	}
	rep := runBoottest(t, spec)
	n := rep.Nodes[0]
	if !rep.Passed() {
		t.Fatalf("first boot: %s\nconsole tail:\n%s", n.Verdict(), n.ConsoleTail)
	}
	if !joinedRE.MatchString(n.JoinLine) {
		t.Errorf("first boot: join line %q, want %v", n.JoinLine, joinedRE)
	}
	if m := roleRE.FindStringSubmatch(requireCase(t, n, boottest.ExpectCase(roleRE.String()), true).Output); m == nil || !strings.Contains(m[1], "credential") {
		t.Errorf("role should come from the SMBIOS credential, console says: %q", m)
	}
	t.Logf("first boot: boot to joined in %.1fs %+v", n.JoinedSeconds, n.Phases)

	spec.ExpectConsole, spec.Checks = nil, nil
	spec.ArtifactsDir = filepath.Join(t.TempDir(), "boot2")
	rep = runBoottest(t, spec)
	n = rep.Nodes[0]
	if !rep.Passed() {
		t.Fatalf("second boot: %s\nconsole tail:\n%s", n.Verdict(), n.ConsoleTail)
	}
	if !alreadyRE.MatchString(n.JoinLine) {
		t.Errorf("second boot: join line %q, want %v", n.JoinLine, alreadyRE)
	}
	t.Logf("second boot: boot to already-joined in %.1fs", n.JoinedSeconds)
	console, err := os.ReadFile(n.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	if joinedRE.Match(console) {
		t.Errorf("second boot joined again:\n%s", tail(console, 3000))
	}
}

// TestBadIPDetectNeverJoins bakes an ip-detect that prints two addresses:
// the host must not join, the harness must report the failed firstboot
// (and the failed ip-detect unit) with the reason, and the console must
// say which script printed what.
func TestBadIPDetectNeverJoins(t *testing.T) {
	t.Parallel()
	cb := clusterBundle(t, "#!/bin/sh\necho 10.0.2.15\necho 10.0.2.16\n")
	res := buildImage(t, cb, "master", "qcow2")
	rep := runBoottest(t, boottest.Spec{Image: artifact(t, res, "qcow2"), Timeout: bootTimeout})
	n := rep.Nodes[0]
	if rep.Passed() {
		t.Fatalf("the harness passed a host whose ip-detect is broken: %s", n.Verdict())
	}
	c := requireCase(t, n, boottest.CaseJoined, false)
	if !regexp.MustCompile(`ip-detect /opt/cluster/etc/ip-detect gave no usable IP.*got 2 lines`).MatchString(c.Reason) {
		t.Errorf("reason does not name the script and what it printed: %s", c.Reason)
	}
	u := requireCase(t, n, boottest.CaseNoFailed, false)
	if !strings.Contains(u.Reason, "cluster-ipdetect.service") {
		t.Errorf("failed units should list cluster-ipdetect.service: %s", u.Reason)
	}
	console, _ := os.ReadFile(n.ConsoleLog)
	if regexp.MustCompile(`cluster-firstboot: joined cluster`).Match(console) {
		t.Errorf("host joined although ip-detect failed:\n%s", tail(console, 3000))
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
