package qemutests

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/qemu"
)

// buildWith runs the real pipeline into a fresh folder with these options
// (Base, OutDir and Name are filled in).
func buildWith(t *testing.T, o build.Options) *build.Result {
	t.Helper()
	o.Base = baseTar(t)
	if o.OutDir == "" {
		o.OutDir = t.TempDir()
	}
	if o.Name == "" {
		o.Name = "host"
	}
	res, err := build.Run(context.Background(), testLogger(t), o)
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	return res
}

// needTools fails the test with what to install when a tool is missing.
func needTools(t *testing.T, tools ...[2]string) {
	t.Helper()
	for _, tl := range tools {
		if !haveTool(tl[0]) {
			t.Fatalf("%s not found: apt-get install %s", tl[0], tl[1])
		}
	}
}

func haveTool(name string) bool {
	if _, err := exec.LookPath(name); err == nil {
		return true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

func runTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extractRange copies size bytes at off of src into a new sparse file.
func extractRange(t *testing.T, src string, off, size int64) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out := filepath.Join(t.TempDir(), "part.img")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<20)
	zero := make([]byte, len(buf))
	r := io.NewSectionReader(in, off, size)
	for pos := int64(0); pos < size; {
		n, err := r.ReadAt(buf, pos)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := f.WriteAt(buf[:n], pos); err != nil {
				t.Fatal(err)
			}
		}
		pos += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func artifactsOf(res *build.Result, format string) []build.Artifact {
	var out []build.Artifact
	for _, a := range res.Artifacts {
		if a.Format == format {
			out = append(out, a)
		}
	}
	return out
}

// bootWithFirmware boots disk like bootVM, with the given firmware and
// memory, the console kept on failure.
func bootWithFirmware(t *testing.T, disk, name string, fw qemu.Firmware, memory int, extra ...string) *qemu.VM {
	t.Helper()
	return bootConfig(t, name, qemu.Config{Disk: disk, Firmware: fw, Memory: memory, ExtraArgs: extra})
}

// bootConfig starts a VM from cfg (one restricted user NIC, the test's
// logger, the console kept on failure).
func bootConfig(t *testing.T, name string, cfg qemu.Config) *qemu.VM {
	t.Helper()
	logDir := os.Getenv("IMAGEBUILDER_TEST_LOGS")
	if logDir == "" {
		logDir = t.TempDir()
	}
	console := filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".console.log")
	cfg.Accel, cfg.CPUs, cfg.NICs, cfg.ConsoleLog, cfg.Log = "auto", 1, []qemu.NIC{{}}, console, testLogger(t)
	vm, err := qemu.Start(context.Background(), cfg)
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

// overlayDisk makes a qcow2 child of img, grown by growMiB, like a host's
// disk that is bigger than the image.
func overlayDisk(t *testing.T, img string, growMiB int) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "host-disk.qcow2")
	format := strings.TrimPrefix(filepath.Ext(img), ".")
	runTool(t, "", "qemu-img", "create", "-q", "-f", "qcow2", "-F", format, "-b", img, disk)
	if growMiB > 0 {
		runTool(t, "", "qemu-img", "resize", "-q", disk, "+"+strconv.Itoa(growMiB)+"M")
	}
	return disk
}
