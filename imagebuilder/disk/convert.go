package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// ConvertQcow2 converts the raw image at raw into a qcow2 image at out with
// qemu-img (from qemu-utils). out appears complete or not at all.
func ConvertQcow2(ctx context.Context, raw, out string) error {
	return DefaultTools().ConvertQcow2(ctx, raw, out)
}

// ConvertQcow2 is ConvertQcow2 with these tools.
func (t Tools) ConvertQcow2(ctx context.Context, raw, out string) error {
	t = t.withDefaults()
	if _, err := os.Stat(raw); err != nil {
		return fmt.Errorf("converting to qcow2: %w", err)
	}
	// qemu-img creates the file itself; reserve a unique temporary name in
	// the destination directory and let it overwrite that.
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("converting to qcow2: %w", err)
	}
	tmp := f.Name()
	f.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	args := []string{"convert", "-q", "-f", "raw", "-O", "qcow2", raw, tmp}
	if _, _, err := t.Runner.Run(ctx, Cmd{Tool: t.QemuImg, Args: args}); err != nil {
		return fmt.Errorf("converting %s to qcow2: %w", raw, err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("converting to qcow2: %w", err)
	}
	ok = true
	return nil
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
