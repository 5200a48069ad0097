package qemutests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/qemu"
)

// installerBinary builds the static installer once per test.
func installerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "imagebuilder-installer")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-buildid=", "-o", bin, "../imagebuilder/installer/cmd/installer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the installer: %v\n%s", err, out)
	}
	return bin
}

// isoMedia are the ways the installer ISO is attached: as a CD, and
// written raw to a USB stick (isohybrid), which QEMU gives as a virtio
// disk; the guest then names the stick /dev/vda and the blank target
// /dev/vdb. target is the disk the installer must pick.
var isoMedia = map[string]struct {
	args   func(iso string) []string
	target string
}{
	"cd": {func(iso string) []string {
		return []string{"-drive", "if=none,id=cd,media=cdrom,readonly=on,format=raw,file=" + iso,
			"-device", "ide-cd,drive=cd,bootindex=0"}
	}, "/dev/vda"},
	"stick": {func(iso string) []string {
		return []string{"-drive", "if=none,id=stick,readonly=on,format=raw,file=" + iso,
			"-device", "virtio-blk-pci,drive=stick,bootindex=0"}
	}, "/dev/vdb"},
	// The same stick on a USB xHCI controller, as on real hardware: the
	// firmware and GRUB read it; the installer's image is in its initramfs,
	// and the only virtio disk is the blank target.
	"usb": {func(iso string) []string {
		return []string{"-device", "qemu-xhci,id=xhci",
			"-drive", "if=none,id=stick,readonly=on,format=raw,file=" + iso,
			"-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0"}
	}, "/dev/vda"},
}

// TestISOInstallsOntoBlankDisk boots the installer ISO with a blank disk
// attached: the installer must pick the blank disk, write and verify the
// image and reboot; the disk then boots on its own, without the ISO, and
// joins. To keep CI time down, the full install runs twice, covering both
// media and both firmwares: from a CD under OVMF and from a USB stick
// (the isohybrid ISO as a raw disk) under SeaBIOS; the stick on a USB
// controller under OVMF is booted until the installer starts writing.
func TestISOInstallsOntoBlankDisk(t *testing.T) {
	t.Parallel()
	needTools(t, [2]string{"grub-mkimage", "grub-pc-bin"})
	if _, err := os.Stat("/usr/lib/grub/x86_64-efi/linux.mod"); err != nil {
		t.Fatal("GRUB EFI modules missing: apt-get install grub-efi-amd64-bin")
	}
	cb, bin := clusterBundle(t, ""), installerBinary(t)
	res := buildWith(t, build.Options{Bundle: cb, Role: "master", Formats: []string{"iso"}, InstallerBinary: bin})
	iso := artifact(t, res, "iso")
	t.Run("reproducible", func(t *testing.T) {
		t.Parallel()
		again := buildWith(t, build.Options{Bundle: cb, Role: "master", Formats: []string{"iso"}, InstallerBinary: bin})
		if a, b := artifactsOf(res, "iso")[0], artifactsOf(again, "iso")[0]; a.SHA256 != b.SHA256 || a.Size != b.Size {
			t.Errorf("two builds of the ISO differ: %+v vs %+v", a, b)
		}
	})
	for _, tc := range []struct {
		name, media string
		fw          qemu.Firmware
		full        bool
	}{
		{"cd-ovmf", "cd", qemu.DefaultFirmware, true},
		{"stick-seabios", "stick", qemu.SeaBIOS, true},
		{"usb-ovmf", "usb", qemu.DefaultFirmware, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := filepath.Join(t.TempDir(), "blank.qcow2")
			runTool(t, "", "qemu-img", "create", "-q", "-f", "qcow2", target, "4G")
			media := isoMedia[tc.media]
			installingRE := regexp.MustCompile(`installer: installing the host image .* on ` + media.target + ` `)
			verifiedRE := regexp.MustCompile(`installer: verified ` + media.target + `: \d+ bytes read back identical to the image`)
			ctx := context.Background()
			start := time.Now()
			vm := bootConfig(t, "install", qemu.Config{
				Disk: target, Firmware: tc.fw, Memory: 2048, NoReboot: true,
				ExtraArgs: media.args(iso),
			})
			if _, err := vm.Expect(ctx, installingRE, bootTimeout); err != nil {
				t.Fatalf("installer: %v", err)
			}
			t.Logf("%s: installer started writing after %.1fs", tc.name, time.Since(start).Seconds())
			if !tc.full {
				return
			}
			if _, err := vm.Expect(ctx, verifiedRE, bootTimeout); err != nil {
				t.Fatalf("install: %v", err)
			}
			if _, err := vm.Expect(ctx, regexp.MustCompile(`installer: done; rebooting`), time.Minute); err != nil {
				t.Fatalf("install: %v", err)
			}
			select {
			case <-vm.Done():
			case <-time.After(2 * time.Minute):
				t.Fatal("the installer did not reboot")
			}
			t.Logf("%s: installed in %.1fs", tc.name, time.Since(start).Seconds())

			start = time.Now()
			host := bootWithFirmware(t, target, "installed", tc.fw, 1024)
			if _, err := host.Expect(ctx, joinedRE, bootTimeout); err != nil {
				t.Fatalf("installed disk: %v", err)
			}
			t.Logf("%s: installed disk booted to joined in %.1fs", tc.name, time.Since(start).Seconds())
		})
	}
}
