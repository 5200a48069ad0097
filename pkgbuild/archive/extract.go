package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Extract writes every entry of r below dir, which must exist and be empty. It
// never follows a symlink: the reader refuses paths through one, files are
// created with O_EXCL|O_NOFOLLOW, and directory modes are applied last (with a
// lenient policy directories keep owner rwx).
func Extract(r *Reader, dir string) error {
	type dirMode struct {
		path string
		mode fs.FileMode
	}
	var dirs []dirMode
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		if r.policy.Lenient {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return fmt.Errorf("extracting %q: %w", e.Name, err)
			}
		}
		switch e.Type {
		case TypeDir:
			if err := os.Mkdir(p, 0o700); err != nil && !(r.policy.Lenient && errors.Is(err, fs.ErrExist) && isDir(p)) {
				return fmt.Errorf("extracting %q: %w", e.Name, err)
			}
			mode := e.Mode
			if r.policy.Lenient {
				mode |= 0o700 // upstream trees stay removable by their owner
			}
			dirs = append(dirs, dirMode{p, mode})
		case TypeFile:
			if err := writeFile(p, r, e); err != nil {
				return fmt.Errorf("extracting %q: %w", e.Name, err)
			}
		case TypeSymlink:
			if err := os.Symlink(e.Linkname, p); err != nil {
				return fmt.Errorf("extracting %q: %w", e.Name, err)
			}
		case TypeHardlink:
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(e.Linkname)), p); err != nil {
				return fmt.Errorf("extracting %q: %w", e.Name, err)
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].path, dirs[i].mode); err != nil {
			return fmt.Errorf("setting mode of %s: %w", dirs[i].path, err)
		}
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

func writeFile(p string, r io.Reader, e *Entry) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if err == nil && n != e.Size {
		err = fmt.Errorf("short content: %d of %d bytes", n, e.Size)
	}
	if err == nil {
		err = f.Chmod(e.Mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
