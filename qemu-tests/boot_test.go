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

// TestBootJoinsOnceUEFI builds a Debian 12 image with the role left to the
// boot, boots it under OVMF with the role as an SMBIOS credential, and
// asserts from the serial console that firstboot detected the IP and joined;
// then boots the same disk again and asserts it does not join a second time.
func TestBootJoinsOnceUEFI(t *testing.T) {
	t.Parallel()
	res := buildImage(t, clusterBundle(t, ""), "", "qcow2")
	img := artifact(t, res, "qcow2")
	// The boots write to a copy-on-write child of the image, like a host's disk.
	disk := filepath.Join(t.TempDir(), "host-disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	creds := map[string]string{"cluster.role": "master"}
	ctx := context.Background()

	start := time.Now()
	vm := bootVM(t, disk, "boot1", creds)
	if _, err := vm.Expect(ctx, detectRE, bootTimeout); err != nil {
		t.Fatalf("first boot: %v", err)
	}
	line, err := vm.Expect(ctx, roleRE, time.Minute)
	if err != nil {
		t.Fatalf("first boot: %v", err)
	}
	if !strings.Contains(line, "credential") {
		t.Errorf("role should come from the SMBIOS credential, console says: %s", line)
	}
	if _, err := vm.Expect(ctx, joinedRE, bootTimeout); err != nil {
		t.Fatalf("first boot: %v", err)
	}
	t.Logf("first boot: boot to joined in %.1fs", time.Since(start).Seconds())
	vm.Kill()

	start = time.Now()
	vm2 := bootVM(t, disk, "boot2", creds)
	if _, err := vm2.Expect(ctx, alreadyRE, bootTimeout); err != nil {
		t.Fatalf("second boot: %v", err)
	}
	t.Logf("second boot: boot to already-joined in %.1fs", time.Since(start).Seconds())
	vm2.Kill()
	console, err := os.ReadFile(vm2.ConsoleLog())
	if err != nil {
		t.Fatal(err)
	}
	if joinedRE.Match(console) {
		t.Errorf("second boot joined again:\n%s", tail(console, 3000))
	}
}

// TestBadIPDetectNeverJoins bakes an ip-detect that prints two addresses:
// the host must not join, and the console must say which script printed what.
func TestBadIPDetectNeverJoins(t *testing.T) {
	t.Parallel()
	cb := clusterBundle(t, "#!/bin/sh\necho 10.0.2.15\necho 10.0.2.16\n")
	res := buildImage(t, cb, "master", "qcow2")
	vm := bootVM(t, artifact(t, res, "qcow2"), "boot", nil)
	failedRE := regexp.MustCompile(`cluster-firstboot: FAILED: ip-detect /opt/cluster/etc/ip-detect gave no usable IP.*got 2 lines`)
	if _, err := vm.Expect(context.Background(), failedRE, bootTimeout); err != nil {
		t.Fatalf("%v", err)
	}
	// Give a wrongly started firstboot a moment to show itself.
	time.Sleep(3 * time.Second)
	vm.Kill()
	console, _ := os.ReadFile(vm.ConsoleLog())
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
