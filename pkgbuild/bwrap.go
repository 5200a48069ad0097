package pkgbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Bwrap is the bubblewrap sandbox: --ro-bind / /, fresh /dev, /proc and /tmp,
// --unshare-all (network shared only on request), --die-with-parent, --clearenv
// and exactly the environment of the spec.
type Bwrap struct {
	// Path of the bwrap binary; empty means "bwrap" on $PATH.
	Path string
}

var _ Sandbox = (*Bwrap)(nil)

// Run runs spec under bwrap.
func (b *Bwrap) Run(ctx context.Context, spec SandboxSpec, log io.Writer) error {
	bin := b.Path
	if bin == "" {
		bin = "bwrap"
	}
	bin, err := exec.LookPath(bin)
	if err != nil {
		return fmt.Errorf("bubblewrap not found (apt-get install bubblewrap): %w", err)
	}
	args, err := bwrapArgs(spec)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{}
	cmd.Stdin = nil
	cmd.Stdout = log
	cmd.Stderr = log
	return cmd.Run()
}

// bwrapArgs turns spec into bwrap arguments. Order matters: later mounts go on
// top of earlier ones.
func bwrapArgs(spec SandboxSpec) ([]string, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("sandbox: empty command")
	}
	args := []string{"--die-with-parent", "--new-session", "--unshare-all"}
	if spec.Network {
		args = append(args, "--share-net")
	}
	args = append(args, "--clearenv")
	env := append([]string(nil), spec.Env...)
	sort.Strings(env)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("sandbox: bad environment entry %q", kv)
		}
		args = append(args, "--setenv", k, v)
	}
	root, err := rootArgs(spec.Hide, freshDirs)
	if err != nil {
		return nil, err
	}
	args = append(args, root...)
	args = append(args, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp")
	if spec.Hide != "" {
		args = append(args, "--perms", "0755", "--tmpfs", spec.Hide)
	}
	for _, d := range spec.Dirs {
		args = append(args, "--perms", "0755", "--dir", d)
	}
	for _, m := range spec.Mounts {
		op := "--ro-bind"
		if m.Writable {
			op = "--bind"
		}
		args = append(args, op, m.Source, m.Target)
	}
	if spec.Hide != "" {
		// Only the writable mounts below it (the package's own output)
		// take writes; anything else under the prefix fails loudly.
		args = append(args, "--remount-ro", spec.Hide)
	}
	if spec.Dir != "" {
		args = append(args, "--chdir", spec.Dir)
	}
	args = append(args, "--")
	return append(args, spec.Argv...), nil
}

// freshDirs are mounted anew in every sandbox (after the root).
var freshDirs = []string{"/tmp", "/dev", "/proc"}

// rootArgs makes the host root visible read-only, arranged so that hide can be
// created: bwrap cannot mkdir inside a read-only bind, so when hide does not exist
// its deepest existing ancestor becomes a tmpfs holding read-only binds of that
// ancestor's entries. Below a fresh directory nothing needs arranging.
func rootArgs(hide string, fresh []string) ([]string, error) {
	full := []string{"--ro-bind", "/", "/"}
	if hide == "" {
		return full, nil
	}
	if !filepath.IsAbs(hide) || filepath.Clean(hide) != hide || hide == "/" {
		return nil, fmt.Errorf("sandbox: hidden path %q must be clean and absolute", hide)
	}
	for _, f := range fresh {
		if hide == f || strings.HasPrefix(hide, f+"/") {
			return full, nil
		}
	}
	anc := hide
	for {
		if _, err := os.Stat(anc); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		anc = filepath.Dir(anc)
	}
	if anc == hide {
		return full, nil // the later --tmpfs hide mounts over the existing directory
	}
	real, err := filepath.EvalSymlinks(anc)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	var args []string
	if real != "/" {
		args = append(full, "--tmpfs", real)
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(real, e.Name())
		if real == "/" && slices.Contains(fresh, p) {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(p)
			if err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
			args = append(args, "--symlink", t, p)
			continue
		}
		args = append(args, "--ro-bind", p, p)
	}
	return args, nil
}
