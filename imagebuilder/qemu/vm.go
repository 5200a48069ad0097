package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"imagebuilder/pkgbuild/atomicfile"
)

// VM is a running QEMU process.
type VM struct {
	cfg       Config
	args      []string
	cmd       *exec.Cmd
	workDir   string
	ownWork   bool
	extraDirs []string
	console   string
	stderr    *lockedBuffer

	done    chan struct{}
	waitErr error

	mu     sync.Mutex
	cursor int64 // where Expect continues
	killed bool
}

// lockedBuffer collects QEMU's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 1<<20 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lookTool finds a program or names the package that ships it.
func lookTool(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: apt-get install %s", name, pkg)
	}
	return p, nil
}

// Start boots a VM. It returns once QEMU runs; the guest boots on its own
// and Expect follows its console. ctx bounds the VM's life: when it ends,
// the VM is killed. Callers must Kill the VM when done (also after it
// exited) to remove its temporary files.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("qemu config: %w", err)
	}
	qemu, err := lookTool(cfg.QEMU, "qemu-system-x86")
	if err != nil {
		return nil, err
	}
	for _, f := range []string{cfg.Firmware.Code, cfg.Firmware.Vars} {
		if cfg.Firmware.BIOS {
			break
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("UEFI firmware: %w (apt-get install ovmf)", err)
		}
	}
	disk, err := absPath(cfg.Disk)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(disk); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	v := &VM{cfg: cfg, workDir: cfg.WorkDir, done: make(chan struct{}), stderr: &lockedBuffer{}}
	if v.workDir == "" {
		if v.workDir, err = os.MkdirTemp("", "imagebuilder-vm-"); err != nil {
			return nil, err
		}
		v.ownWork = true
	} else if err := os.MkdirAll(v.workDir, 0o755); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			v.cleanup()
		}
	}()

	vars := filepath.Join(v.workDir, "OVMF_VARS.fd")
	if cfg.Firmware.BIOS {
		vars = ""
	} else if err := atomicfile.Copy(cfg.Firmware.Vars, vars, 0o644); err != nil {
		return nil, fmt.Errorf("copying firmware variables: %w", err)
	}
	format := cfg.Format
	if cfg.Snapshot {
		qemuImg, err := lookTool(cfg.QemuImg, "qemu-utils")
		if err != nil {
			return nil, err
		}
		overlay := filepath.Join(v.workDir, "overlay.qcow2")
		os.Remove(overlay)
		out, err := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-F", cfg.Format, "-b", disk, overlay).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("creating snapshot overlay: %w: %s", err, bytes.TrimSpace(out))
		}
		disk, format = overlay, "qcow2"
	}
	v.console = cfg.ConsoleLog
	if v.console == "" {
		v.console = filepath.Join(v.workDir, "console.log")
	}
	if v.console, err = absPath(v.console); err != nil {
		return nil, err
	}
	// Start from an empty log so Expect never matches a previous boot.
	if err := os.WriteFile(v.console, nil, 0o644); err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}

	accel := cfg.Accel
	if accel == "auto" {
		accel = "tcg"
		if err := ProbeKVM(ctx, cfg, 0); err != nil {
			cfg.Log.Info("KVM not usable, using TCG", "reason", err)
		} else {
			accel = "kvm"
		}
	}
	qmpSock := ""
	if accel == "tcg" && cfg.TCGNudge > 0 {
		// Unix socket paths are limited to 107 bytes.
		qmpSock = filepath.Join(v.workDir, "qmp.sock")
		if len(qmpSock) > 100 {
			dir, err := os.MkdirTemp("", "ibqmp-")
			if err != nil {
				return nil, err
			}
			v.extraDirs = append(v.extraDirs, dir)
			qmpSock = filepath.Join(dir, "qmp.sock")
		}
	}
	v.args = cfg.qemuArgs(accel, disk, format, vars, v.console, qmpSock)
	cmd := exec.Command(qemu, v.args...)
	cmd.Stdin = nil
	cmd.Stdout = v.stderr
	cmd.Stderr = v.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cfg.Log.Info("starting VM", "accel", accel, "disk", cfg.Disk, "snapshot", cfg.Snapshot, "console", v.console)
	cfg.Log.Debug("qemu command", "args", v.args)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", qemu, err)
	}
	v.cmd = cmd
	go func() {
		v.waitErr = cmd.Wait()
		close(v.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			v.kill()
		case <-v.done:
		}
	}()
	if qmpSock != "" {
		go v.nudge(ctx, qmpSock, cfg.TCGNudge)
	}
	ok = true
	return v, nil
}

// Args is QEMU's command line (without the program).
func (v *VM) Args() []string { return append([]string(nil), v.args...) }

// ConsoleLog is the file the serial console is written to.
func (v *VM) ConsoleLog() string { return v.console }

// Pid is QEMU's process id (and process group).
func (v *VM) Pid() int { return v.cmd.Process.Pid }

// Done is closed when QEMU has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// Stderr is what QEMU printed itself (not the guest console).
func (v *VM) Stderr() string { return v.stderr.String() }

// Wait blocks until QEMU exits and returns its exit error, with QEMU's own
// messages attached. A VM ended by Kill returns an error too.
func (v *VM) Wait() error {
	<-v.done
	if v.waitErr != nil {
		return fmt.Errorf("qemu: %w: %s", v.waitErr, tailString(v.stderr.String(), 2000))
	}
	return nil
}

// kill SIGKILLs QEMU's process group.
func (v *VM) kill() {
	v.mu.Lock()
	v.killed = true
	v.mu.Unlock()
	select {
	case <-v.done:
		return
	default:
	}
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
}

// Kill ends QEMU and everything in its process group, waits for it and
// removes the temporary work directory (if Start made it). It is safe to
// call more than once and after the VM exited.
func (v *VM) Kill() error {
	v.kill()
	select {
	case <-v.done:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("qemu (pid %d) did not exit after SIGKILL", v.cmd.Process.Pid)
	}
	v.cleanup()
	return nil
}

func (v *VM) cleanup() {
	if v.ownWork {
		os.RemoveAll(v.workDir)
	}
	for _, d := range v.extraDirs {
		os.RemoveAll(d)
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return string(bytes.TrimSpace([]byte(s)))
}

var errExited = errors.New("VM exited")
