package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"imagebuilder/pkgbuild/atomicfile"
)

// DefaultProbeTimeout bounds ProbeKVM. Under working KVM the firmware
// reaches its boot manager in about a second.
const DefaultProbeTimeout = 5 * time.Second

// ProbeKVM reports whether KVM can run a guest here: it boots the firmware
// of cfg (no disk, no network) under -accel kvm and waits at most timeout
// (0 is DefaultProbeTimeout) for the firmware's boot manager to print on
// the serial console. nil means usable; the error says why not. A host
// where /dev/kvm exists but guests hang or hit "KVM internal error" fails
// the probe, quickly.
func ProbeKVM(ctx context.Context, cfg Config, timeout time.Duration) error {
	cfg = cfg.withDefaults()
	if cfg.Firmware.BIOS {
		cfg.Firmware = DefaultFirmware // the probe only needs some firmware
	}
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/kvm: %w", err)
	}
	f.Close()
	qemu, err := lookTool(cfg.QEMU, "qemu-system-x86")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "imagebuilder-kvm-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	vars := filepath.Join(dir, "vars.fd")
	if err := atomicfile.Copy(cfg.Firmware.Vars, vars, 0o644); err != nil {
		return fmt.Errorf("firmware variables: %w (apt-get install ovmf)", err)
	}
	console := filepath.Join(dir, "console.log")
	args := []string{
		"-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "kvm", "-m", "256",
		"-display", "none", "-monitor", "none",
		"-chardev", "file,id=console,path=" + optEscape(console), "-serial", "chardev:console",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + optEscape(cfg.Firmware.Code),
		"-drive", "if=pflash,format=raw,unit=1,file=" + optEscape(vars),
		"-no-reboot",
	}
	if cfg.CPU != "" {
		args = append(args, "-cpu", cfg.CPU)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stderr lockedBuffer
	cmd := exec.Command(qemu, args...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", qemu, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, _ := os.ReadFile(console); bytes.Contains(b, []byte("BdsDxe")) {
			return nil
		}
		if s := stderr.String(); strings.Contains(s, "KVM internal error") {
			return fmt.Errorf("KVM cannot run the firmware: %s", kvmErrorSummary(s))
		}
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("qemu -accel kvm exited early (%v): %s", err, tailString(stderr.String(), 300))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("firmware under KVM printed nothing within %v (guest hangs)", timeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// kvmErrorSummary is the one-line gist of QEMU's KVM failure report (which
// continues with a register dump).
func kvmErrorSummary(stderr string) string {
	var parts []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "KVM internal error") || strings.Contains(l, "emulation failure") {
			parts = append(parts, strings.TrimSpace(l))
		}
	}
	return strings.Join(parts, "; ")
}
