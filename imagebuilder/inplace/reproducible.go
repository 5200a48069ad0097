package inplace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is where the appliance found the image's root, from its console.
type Root struct {
	// Kind is "partition" or "lvm"; Name is "/dev/vda2" or "VG/LV".
	Kind, Name, FS string
	// Ranges are the byte ranges of the disk the file system occupies, in
	// order (none for a striped logical volume).
	Ranges [][2]int64
}

// ParseRoot reads the IBROOT and IBRANGE lines of an appliance console.
func ParseRoot(console string) (Root, error) {
	var r Root
	for _, l := range strings.Split(console, "\n") {
		f := strings.Fields(strings.TrimRight(l, "\r"))
		switch {
		case len(f) == 4 && f[0] == "IBROOT":
			r.Kind, r.Name, r.FS = f[1], f[2], f[3]
		case len(f) == 3 && f[0] == "IBRANGE":
			off, err1 := strconv.ParseInt(f[1], 10, 64)
			n, err2 := strconv.ParseInt(f[2], 10, 64)
			if err := errors.Join(err1, err2); err != nil || off < 0 || n <= 0 {
				return r, fmt.Errorf("appliance console: bad line %q", l)
			}
			r.Ranges = append(r.Ranges, [2]int64{off, n})
		}
	}
	if r.FS == "" {
		return r, errors.New("appliance console: no IBROOT line")
	}
	return r, nil
}

// rangesFile reads and writes a file system that lies in ranges of a disk
// image as one contiguous space.
type rangesFile struct {
	f      *os.File
	ranges [][2]int64
}

func (m rangesFile) size() int64 {
	var n int64
	for _, r := range m.ranges {
		n += r[1]
	}
	return n
}

func (m rangesFile) do(p []byte, off int64, write bool) (int, error) {
	done := 0
	for _, r := range m.ranges {
		if len(p) == 0 {
			break
		}
		if off >= r[1] {
			off -= r[1]
			continue
		}
		n := int(min(int64(len(p)), r[1]-off))
		var err error
		if write {
			_, err = m.f.WriteAt(p[:n], r[0]+off)
		} else {
			_, err = m.f.ReadAt(p[:n], r[0]+off)
		}
		if err != nil {
			return done, err
		}
		done += n
		p = p[n:]
		off = 0
	}
	if len(p) > 0 {
		return done, io.EOF
	}
	return done, nil
}

// hole reports whether [off, off+n) of the space is a hole of the file
// (SEEK_DATA finds no data before its end); it must lie in one range.
func (m rangesFile) hole(off, n int64) (bool, error) {
	for _, r := range m.ranges {
		if off >= r[1] {
			off -= r[1]
			continue
		}
		if off+n > r[1] {
			return false, nil // crosses ranges: read it
		}
		next, err := unix.Seek(int(m.f.Fd()), r[0]+off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return true, nil // no data after off at all
		}
		if err != nil {
			return false, err
		}
		return next >= r[0]+off+n, nil
	}
	return false, nil
}

func (m rangesFile) ReadAt(p []byte, off int64) (int, error)  { return m.do(p, off, false) }
func (m rangesFile) WriteAt(p []byte, off int64) (int, error) { return m.do(p, off, true) }

// ErrNotNormalized says the root is of a kind MakeReproducible leaves as
// the run left it (the output is then not bit-reproducible).
var ErrNotNormalized = errors.New("not normalized for reproducibility")

// MakeReproducible normalizes the root file system of image (raw), which
// the appliance changed in place, against the same ranges of vendor (raw,
// before the run): see NormalizeXFS and FormatXFSLog. Only XFS roots on
// partitions or linear logical volumes can be normalized; for others it
// returns an error wrapping ErrNotNormalized.
func MakeReproducible(ctx context.Context, image, vendor string, root Root, epoch int64, tmpDir string) (int, error) {
	if root.FS != "xfs" {
		return 0, fmt.Errorf("%s is %s: %w (only XFS roots are; ext4 keeps the journal, timestamps and generations the run left)", root.Name, root.FS, ErrNotNormalized)
	}
	if len(root.Ranges) == 0 {
		return 0, fmt.Errorf("%s is a striped logical volume: %w", root.Name, ErrNotNormalized)
	}
	img, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer img.Close()
	ven, err := os.Open(vendor)
	if err != nil {
		return 0, err
	}
	defer ven.Close()
	out, in := rangesFile{img, root.Ranges}, rangesFile{ven, root.Ranges}
	// xfs_db works on a file: the root, extracted sparsely.
	tmp := filepath.Join(tmpDir, "root.xfs")
	t, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	defer t.Close()
	size := out.size()
	if err := t.Truncate(size); err != nil {
		return 0, err
	}
	const chunk = 1 << 20
	buf, zero := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		n := int(min(chunk, size-off))
		if hole, err := out.hole(off, int64(n)); err != nil || hole {
			continue // holes stay holes; an error falls back to reading
		}
		if _, err := out.ReadAt(buf[:n], off); err != nil {
			return 0, fmt.Errorf("reading the root: %w", err)
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := t.WriteAt(buf[:n], off); err != nil {
				return 0, err
			}
		}
	}
	count, err := NormalizeXFS(t, in, epoch)
	if err != nil {
		return count, fmt.Errorf("normalizing %s: %w", root.Name, err)
	}
	if err := t.Sync(); err != nil {
		return count, err
	}
	if err := FormatXFSLog(ctx, tmp); err != nil {
		return count, fmt.Errorf("normalizing %s: %w", root.Name, err)
	}
	// Back into the image, where it differs (only the data of the
	// extracted file can).
	tf := rangesFile{t, [][2]int64{{0, size}}}
	cur := make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		n := int(min(chunk, size-off))
		if hole, err := tf.hole(off, int64(n)); err == nil && hole {
			continue
		}
		if _, err := t.ReadAt(buf[:n], off); err != nil {
			return count, err
		}
		if _, err := out.ReadAt(cur[:n], off); err != nil {
			return count, err
		}
		if !bytes.Equal(buf[:n], cur[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return count, fmt.Errorf("writing the root back: %w", err)
			}
		}
	}
	return count, img.Sync()
}
