package inplace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Options say which image gets which overlay.
type Options struct {
	// Image is the disk image changed in place (pass a copy, or a qcow2
	// overlay made with qemu-img create -b, to keep the original); Format
	// is "raw" or "qcow2".
	Image, Format string
	// Overlay is an uncompressed tar of what to add at the image's root.
	Overlay string
	// Kernel runs the appliance; InitBinary is the static appliance
	// (CGO_ENABLED=0 go build ./imagebuilder/inplace/appliance).
	Kernel     *Kernel
	InitBinary string
	// List, instead of applying, prints the root's entries ("IBLIST ...").
	List bool
	// Skeleton, instead of applying, mounts the root read-only and writes
	// its skeleton tar to this file (see ReadSkeleton).
	Skeleton string
	// Root picks the root when several file systems of the image hold an
	// os-release: an LVM logical volume as "VG/LV" or a partition as
	// "vda3". Empty: the only one, or the logical volume named root,
	// rootlv or lv_root.
	Root string
	// Timeout bounds the appliance run; 0 is 5 minutes.
	Timeout time.Duration
}

// skeletonDiskSize bounds the skeleton tar (a sparse file).
const skeletonDiskSize = 4 << 30

var resultRE = regexp.MustCompile(`IMAGEBUILDER-APPLIANCE: (OK|FAILED: .*)`)

// Run boots the appliance on the image and returns its console output. It
// fails with the appliance's own message when the appliance fails.
func Run(ctx context.Context, log *slog.Logger, o Options) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Format != "raw" && o.Format != "qcow2" {
		return "", fmt.Errorf("image format %q: raw or qcow2", o.Format)
	}
	work, err := os.MkdirTemp("", "imagebuilder-inplace-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	initrd, err := Initramfs(o.InitBinary, o.Kernel)
	if err != nil {
		return "", err
	}
	files := map[string][]byte{"vmlinuz": o.Kernel.Linux, "initramfs.cpio": initrd}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(work, n), data, 0o644); err != nil {
			return "", err
		}
	}
	overlay, overlayMode := o.Overlay, "format=raw,readonly=on"
	if o.Skeleton != "" {
		if o.List {
			return "", errors.New("options List and Skeleton exclude each other")
		}
		f, err := os.Create(o.Skeleton)
		if err != nil {
			return "", fmt.Errorf("skeleton: %w", err)
		}
		err = f.Truncate(skeletonDiskSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("skeleton: %w", err)
		}
		overlay, overlayMode = o.Skeleton, "format=raw"
	} else if o.List || overlay == "" {
		overlay = filepath.Join(work, "empty.tar")
		if err := os.WriteFile(overlay, make([]byte, 1024), 0o644); err != nil {
			return "", err
		}
	}
	appendLine := "console=ttyS0 panic=-1 no_timer_check quiet"
	if o.List {
		appendLine += " ib.mode=list"
	}
	if o.Root != "" {
		if strings.ContainsAny(o.Root, " \t\n\"") {
			return "", fmt.Errorf("root %q: blanks and quotes are not allowed", o.Root)
		}
		appendLine += " ib.root=" + o.Root
	}
	if o.Skeleton != "" {
		appendLine += " ib.mode=skeleton"
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	args := []string{
		"-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
		"-kernel", filepath.Join(work, "vmlinuz"), "-initrd", filepath.Join(work, "initramfs.cpio"),
		"-append", appendLine,
		"-drive", "file=" + o.Image + ",if=virtio,format=" + o.Format + ",cache=unsafe",
		"-drive", "file=" + overlay + ",if=virtio,cache=unsafe," + overlayMode,
		"-nic", "none",
	}
	log.Info("starting the in-place appliance", "image", o.Image, "list", o.List)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	console := out.String()
	m := resultRE.FindStringSubmatch(console)
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return console, errors.New("qemu-system-x86_64 is needed: apt-get install qemu-system-x86")
	case m == nil && ctx.Err() != nil:
		return console, fmt.Errorf("the appliance did not finish in %s; console tail:\n%s", o.Timeout, tail(console))
	case m == nil:
		return console, fmt.Errorf("the appliance stopped without a result (%v); console tail:\n%s", err, tail(console))
	case m[1] != "OK":
		return console, fmt.Errorf("appliance: %s", strings.TrimPrefix(m[1], "FAILED: "))
	}
	log.Info("in-place appliance done", "seconds", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	return console, nil
}

func tail(s string) string {
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}
