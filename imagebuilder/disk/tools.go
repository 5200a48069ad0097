package disk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tool is an external program and the Debian package that ships it.
type Tool struct {
	// Name is the program name ("mkfs.ext4").
	Name string
	// Path, when set, is used as is; otherwise Name is looked up in PATH and
	// then in /usr/sbin and /sbin, which a non-root PATH often lacks.
	Path string
	// Package is what to apt-get install when the program is missing.
	Package string
}

// Resolve returns the program's path, or an error naming the package to
// install.
func (t Tool) Resolve() (string, error) {
	if t.Path != "" {
		if _, err := os.Stat(t.Path); err != nil {
			return "", fmt.Errorf("%s not found at %s (apt-get install %s): %w", t.Name, t.Path, t.Package, err)
		}
		return t.Path, nil
	}
	if p, err := exec.LookPath(t.Name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(dir, t.Name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin: apt-get install %s", t.Name, t.Package)
}

// Cmd is one run of an external tool.
type Cmd struct {
	Tool Tool
	Args []string
	// Env is added to the caller's environment (later entries win).
	Env []string
	// Dir, when set, is the working directory.
	Dir string
}

func (c Cmd) String() string {
	return strings.Join(append([]string{c.Tool.Name}, c.Args...), " ")
}

// Runner runs external tools. ExecRunner is the real one; tests of the
// logic around the tools use a fake.
type Runner interface {
	Run(ctx context.Context, c Cmd) (stdout, stderr []byte, err error)
}

// ExecRunner runs tools with os/exec, killed when ctx ends.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// Run resolves the tool, runs it and returns its output. A non-zero exit is
// an error that carries the tail of stderr.
func (ExecRunner) Run(ctx context.Context, c Cmd) ([]byte, []byte, error) {
	path, err := c.Tool.Resolve()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = c.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("running %s: %w", c.Tool.Name, ctx.Err())
	}
	if err != nil {
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("running %s: %w: %s", c, err, tail(stderr.Bytes(), 2000))
	}
	return stdout.Bytes(), stderr.Bytes(), nil
}

// tail returns the last n bytes of b as trimmed text.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// Tools are the external programs and files the disk writer uses.
type Tools struct {
	MkfsExt4  Tool
	Debugfs   Tool
	Resize2fs Tool
	QemuImg   Tool
	// GrubMkimage makes GRUB's BIOS core.img; GrubPCDir holds the i386-pc
	// modules and boot.img (both from grub-pc-bin).
	GrubMkimage Tool
	GrubPCDir   string
	// SystemdBootEFI is systemd-boot's EFI binary on the build machine.
	SystemdBootEFI string
	Runner         Runner
}

// DefaultSystemdBootEFI is where Debian's systemd-boot-efi installs the
// x86-64 boot manager.
const DefaultSystemdBootEFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// DefaultGrubPCDir is where Debian's grub-pc-bin installs the i386-pc
// modules and boot.img.
const DefaultGrubPCDir = "/usr/lib/grub/i386-pc"

// DefaultTools are the Debian tools found by name.
func DefaultTools() Tools {
	return Tools{
		MkfsExt4:       Tool{Name: "mkfs.ext4", Package: "e2fsprogs"},
		Debugfs:        Tool{Name: "debugfs", Package: "e2fsprogs"},
		Resize2fs:      Tool{Name: "resize2fs", Package: "e2fsprogs"},
		QemuImg:        Tool{Name: "qemu-img", Package: "qemu-utils"},
		GrubMkimage:    Tool{Name: "grub-mkimage", Package: "grub-pc-bin"},
		GrubPCDir:      DefaultGrubPCDir,
		SystemdBootEFI: DefaultSystemdBootEFI,
		Runner:         ExecRunner{},
	}
}

// withDefaults fills the zero fields of t from DefaultTools.
func (t Tools) withDefaults() Tools {
	d := DefaultTools()
	if t.MkfsExt4.Name == "" {
		t.MkfsExt4 = d.MkfsExt4
	}
	if t.Debugfs.Name == "" {
		t.Debugfs = d.Debugfs
	}
	if t.Resize2fs.Name == "" {
		t.Resize2fs = d.Resize2fs
	}
	if t.QemuImg.Name == "" {
		t.QemuImg = d.QemuImg
	}
	if t.GrubMkimage.Name == "" {
		t.GrubMkimage = d.GrubMkimage
	}
	if t.GrubPCDir == "" {
		t.GrubPCDir = d.GrubPCDir
	}
	if t.SystemdBootEFI == "" {
		t.SystemdBootEFI = d.SystemdBootEFI
	}
	if t.Runner == nil {
		t.Runner = d.Runner
	}
	return t
}

// WithDefaults fills the zero fields of t from DefaultTools.
func (t Tools) WithDefaults() Tools { return t.withDefaults() }
