package disk

import (
	"fmt"
	"os"
	"path/filepath"
)

// writeAtomic creates a temporary file next to out, lets fill write it,
// syncs it (unless sync is false: a scratch file) and renames it to out. On any error the temporary file is
// removed and out is untouched.
func writeAtomic(out string, sync bool, fill func(f *os.File) error) (err error) {
	dir := filepath.Dir(out)
	f, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("creating %s: %w", out, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = fill(f); err != nil {
		return err
	}
	if sync {
		if err = f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", tmp, err)
		}
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, out); err != nil {
		return fmt.Errorf("renaming %s: %w", tmp, err)
	}
	if d, derr := os.Open(dir); sync && derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
