package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"imagebuilder/pkgbuild/atomicfile"
)

// ConvertQcow2 converts the raw image at raw into a qcow2 image at out with
// qemu-img (from qemu-utils). out appears complete or not at all.
func ConvertQcow2(ctx context.Context, raw, out string) error {
	return DefaultTools().ConvertQcow2(ctx, raw, out)
}

// ConvertQcow2 is ConvertQcow2 with these tools.
func (t Tools) ConvertQcow2(ctx context.Context, raw, out string) error {
	return t.Convert(ctx, raw, out, "qcow2", ConvertIDs{})
}

// Conversions are the qemu-img output formats and options of the disk
// formats: vmdk is streamOptimized (what EC2 imports as a snapshot), vhd is
// fixed with its size kept exactly (Azure needs a fixed VHD of a whole
// number of MiB, which a raw image from WriteRaw always is).
var Conversions = map[string][]string{
	"qcow2": {"-O", "qcow2"},
	"vmdk":  {"-O", "vmdk", "-o", "subformat=streamOptimized"},
	"vhd":   {"-O", "vpc", "-o", "subformat=fixed,force_size=on"},
}

// Convert converts the raw image at raw into format (a key of Conversions)
// at out with qemu-img. out appears complete or not at all. The ids that
// qemu-img draws at random in vmdk and vhd images come from ids.
func (t Tools) Convert(ctx context.Context, raw, out, format string, ids ConvertIDs) error {
	_, err := t.convert(ctx, raw, out, format, ids, false)
	return err
}

// ConvertSum is Convert that also returns the hex sha256 of out, read while
// the file is synced to disk.
func (t Tools) ConvertSum(ctx context.Context, raw, out, format string, ids ConvertIDs) (string, error) {
	return t.convert(ctx, raw, out, format, ids, true)
}

func (t Tools) convert(ctx context.Context, raw, out, format string, ids ConvertIDs, sum bool) (string, error) {
	t = t.withDefaults()
	conv, ok := Conversions[format]
	if !ok {
		return "", fmt.Errorf("converting to %s: unknown disk format", format)
	}
	if _, err := os.Stat(raw); err != nil {
		return "", fmt.Errorf("converting to %s: %w", format, err)
	}
	// qemu-img creates the file itself, and a vmdk names its own file in
	// its descriptor: convert under the final name, in a private
	// temporary folder beside out, then rename.
	dir, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("converting to %s: %w", format, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, filepath.Base(out))
	args := append(append([]string{"convert", "-q", "-f", "raw"}, conv...), raw, tmp)
	if _, _, err := t.Runner.Run(ctx, Cmd{Tool: t.QemuImg, Args: args}); err != nil {
		return "", fmt.Errorf("converting %s to %s: %w", raw, format, err)
	}
	if err := stampIDs(tmp, format, ids); err != nil {
		return "", fmt.Errorf("converting %s to %s: %w", raw, format, err)
	}
	digest := make(chan error, 1)
	var sumHex string
	if sum {
		go func() {
			var err error
			sumHex, err = atomicfile.SHA256(tmp)
			digest <- err
		}()
	} else {
		digest <- nil
	}
	serr := syncFile(tmp)
	if err := <-digest; err != nil {
		return "", fmt.Errorf("converting to %s: %w", format, err)
	}
	if serr != nil {
		return "", serr
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("converting to %s: %w", format, err)
	}
	return sumHex, nil
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	return nil
}
