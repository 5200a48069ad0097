package disk_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"imagebuilder/imagebuilder/disk"
	"imagebuilder/imagebuilder/qemu"
	"imagebuilder/overlay"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestBootDebianBase stages a real Debian 12 base into a tree, writes it as
// a raw disk and boots it under OVMF (TCG) to the serial login prompt.
func TestBootDebianBase(t *testing.T) {
	if testing.Short() {
		t.Skip("boot test skipped in -short mode")
	}
	base := os.Getenv("IMAGEBUILDER_BASE_TAR")
	if base == "" {
		t.Fatal("IMAGEBUILDER_BASE_TAR is not set. Build the Debian base once (cached) and point the test at it:\n" +
			"  distros/debian/mkbase.sh build/base-debian12.tar\n" +
			"  IMAGEBUILDER_BASE_TAR=$PWD/build/base-debian12.tar go test ./imagebuilder/disk/")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))

	out := filepath.Join(t.TempDir(), "debian12.raw")
	start := time.Now()
	res := writeBase(ctx, t, log, base, out)
	t.Logf("WriteRaw %v: disk %d MiB (root %d MiB, %d inodes), %d debugfs fixups; scan %v, mkfs %v, debugfs %v, ESP %v, assemble %v",
		time.Since(start).Round(time.Millisecond), res.SizeBytes>>20, res.Root.Size>>20, res.RootInodes, res.FixupCommands,
		res.Timings.Scan.Round(time.Millisecond), res.Timings.Mkfs.Round(time.Millisecond), res.Timings.Debugfs.Round(time.Millisecond),
		res.Timings.ESP.Round(time.Millisecond), res.Timings.Assemble.Round(time.Millisecond))

	// The same base and seed, staged again, give the same bytes.
	again := filepath.Join(t.TempDir(), "again.raw")
	writeBase(ctx, t, nil, base, again)
	if a, b := fileSHA256(t, out), fileSHA256(t, again); a != b {
		t.Errorf("two builds of the same base differ: %s vs %s", a, b)
	} else {
		t.Logf("reproducible: both builds are sha256 %s", a)
	}
	os.Remove(again)

	qcow := filepath.Join(t.TempDir(), "debian12.qcow2")
	start = time.Now()
	if err := disk.ConvertQcow2(ctx, out, qcow); err != nil {
		t.Fatal(err)
	}
	t.Logf("qcow2 conversion %v", time.Since(start).Round(time.Millisecond))

	vm, err := qemu.Start(ctx, qemu.Config{
		Disk:              qcow,
		Snapshot:          true,
		Memory:            1024,
		CPUs:              2,
		NICs:              []qemu.NIC{{}},
		SMBIOSCredentials: map[string]string{"imagebuilder.test": "1"},
		// IMAGEBUILDER_CONSOLE_LOG keeps the console for a look afterwards.
		ConsoleLog: os.Getenv("IMAGEBUILDER_CONSOLE_LOG"),
		Log:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	boot := time.Now()
	for _, step := range []struct {
		re      string
		timeout time.Duration
	}{
		{`Linux version \S+`, 60 * time.Second},
		{`Reached target .*Multi-User System`, 120 * time.Second},
		{`ibtest login: ?$`, 60 * time.Second},
	} {
		line, err := vm.Expect(ctx, regexp.MustCompile(step.re), step.timeout)
		if err != nil {
			t.Fatalf("boot: %v", err)
		}
		t.Logf("%6.1fs  %s", time.Since(boot).Seconds(), line)
	}
	// The root filesystem is the one planned, mounted read-write via fstab.
	b, err := os.ReadFile(vm.ConsoleLog())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"Failed to mount", "emergency mode", "FAILED"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("console shows %q", bad)
		}
	}
	t.Logf("boot to login prompt: %.1fs", time.Since(boot).Seconds())
}

// bootSeed is the seed of the boot test's image.
const bootSeed = "boot-test-debian12"

// writeBase stages the base tarball into a fresh tree, adds what a
// bootable host needs (fstab for the planned UUIDs, an empty machine-id, a
// hostname) and writes it as a raw disk.
func writeBase(ctx context.Context, t *testing.T, log *slog.Logger, base, out string) *disk.Result {
	t.Helper()
	f, err := os.Open(base)
	if err != nil {
		t.Fatalf("IMAGEBUILDER_BASE_TAR: %v (build it with distros/debian/mkbase.sh)", err)
	}
	defer f.Close()
	start := time.Now()
	tree := overlay.NewTree(t.TempDir())
	if err := tree.Apply(f, "", overlay.ApplyOptions{}); err != nil {
		t.Fatalf("staging the base: %v", err)
	}
	t.Logf("staged %d entries in %v", len(tree.Entries), time.Since(start).Round(time.Millisecond))
	u := disk.PlanUUIDs(bootSeed)
	for _, err := range []error{
		tree.MkdirAll("boot/efi", 0o755, 0, 0),
		tree.WriteFile("etc/fstab", []byte(u.Fstab("/boot/efi")), 0o644, 0, 0),
		tree.WriteFile("etc/machine-id", nil, 0o444, 0, 0),
		tree.WriteFile("etc/hostname", []byte("ibtest\n"), 0o644, 0, 0),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := disk.WriteRaw(ctx, log, tree, out, disk.Options{Seed: bootSeed})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
