package qemu

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

func needQEMU(t *testing.T) {
	t.Helper()
	if _, err := lookTool("qemu-system-x86_64", "qemu-system-x86"); err != nil {
		t.Fatalf("this test needs QEMU: %v", err)
	}
	if _, err := lookTool("qemu-img", "qemu-utils"); err != nil {
		t.Fatalf("this test needs qemu-img: %v", err)
	}
	for _, f := range []string{DefaultFirmware.Code, DefaultFirmware.Vars} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("this test needs OVMF: apt-get install ovmf (%v)", err)
		}
	}
}

// TestStartFirmwareOnly boots the firmware with an empty disk through a
// snapshot overlay, waits for its boot manager on the console and kills
// the VM.
func TestStartFirmwareOnly(t *testing.T) {
	needQEMU(t)
	ctx := context.Background()
	disk := filepath.Join(t.TempDir(), "blank.raw")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(disk)
	vm, err := Start(ctx, Config{Disk: disk, Snapshot: true, Memory: 256, CPUs: 1, NoReboot: true,
		NICs:              []NIC{{HostFwd: []HostFwd{{HostPort: 0, GuestPort: 22}}}},
		SMBIOSCredentials: map[string]string{"cluster.role": "master"}})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	work := filepath.Dir(vm.ConsoleLog())
	if _, err := os.Stat(filepath.Join(work, "overlay.qcow2")); err != nil {
		t.Errorf("no snapshot overlay: %v", err)
	}
	start := time.Now()
	line, err := vm.Expect(ctx, regexp.MustCompile(`BdsDxe`), 60*time.Second)
	if err != nil {
		t.Fatalf("%v\nqemu: %s", err, vm.Stderr())
	}
	t.Logf("firmware boot manager after %v: %q", time.Since(start).Round(time.Millisecond), line)
	pid := vm.Pid()
	if err := vm.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("qemu pid %d still exists after Kill: %v", pid, err)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("temporary work dir %s left behind", work)
	}
	if err := vm.Wait(); err == nil {
		t.Errorf("Wait after Kill returned nil")
	}
	after, _ := os.ReadFile(disk)
	if sha256.Sum256(before) != sha256.Sum256(after) {
		t.Errorf("snapshot boot modified the disk")
	}
}

func TestStartKilledByContext(t *testing.T) {
	needQEMU(t)
	ctx, cancel := context.WithCancel(context.Background())
	disk := filepath.Join(t.TempDir(), "blank.raw")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	vm, err := Start(ctx, Config{Disk: disk, Memory: 128, CPUs: 1, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	cancel()
	select {
	case <-vm.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("VM still running 10s after its context ended")
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing qemu", Config{Disk: "/dev/null", QEMU: "no-such-qemu-binary"}, "apt-get install qemu-system-x86"},
		{"missing firmware", Config{Disk: "/dev/null", Firmware: Firmware{Code: "/nonexistent/CODE.fd", Vars: "/nonexistent/VARS.fd"}}, "apt-get install ovmf"},
		{"missing disk", Config{Disk: "/nonexistent/disk.raw"}, "disk:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := Start(ctx, tc.cfg)
			if err == nil {
				vm.Kill()
				t.Fatal("Start succeeded")
			}
			if !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(err.Error()) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestProbeKVMIsBounded checks only that the probe answers within its
// timeout; whether KVM works depends on the machine (here it does not).
func TestProbeKVMIsBounded(t *testing.T) {
	needQEMU(t)
	start := time.Now()
	err := ProbeKVM(context.Background(), Config{}, 3*time.Second)
	took := time.Since(start)
	t.Logf("ProbeKVM: %v (after %v)", err, took.Round(time.Millisecond))
	if took > 6*time.Second {
		t.Fatalf("ProbeKVM took %v, beyond its 3s bound", took)
	}
}
