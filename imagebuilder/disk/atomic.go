package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
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

// copySparse copies the file at src into dst at offset off, skipping holes
// and all-zero chunks (dst is freshly truncated, so they read as zero
// already). A 1.5 GB mostly empty filesystem copies in well under a second
// and stays sparse.
func copySparse(ctx context.Context, dst io.WriterAt, off int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	buf := make([]byte, 4*mib)
	zero := make([]byte, len(buf))
	fd := int(in.Fd())
	pos := int64(0)
	for pos < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			data = pos // no SEEK_DATA support: read everything
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		for pos = data; pos < hole; {
			n := int64(len(buf))
			if hole-pos < n {
				n = hole - pos
			}
			if _, err := in.ReadAt(buf[:n], pos); err != nil {
				return err
			}
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, err := dst.WriteAt(buf[:n], off+pos); err != nil {
					return err
				}
			}
			pos += n
		}
	}
	return nil
}
