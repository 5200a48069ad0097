package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LayerCorruptError is a cached layer whose image does not match its
// digest: the caller removes the layer and makes it again.
type LayerCorruptError struct {
	Dir, Want, Got string
}

func (e *LayerCorruptError) Error() string {
	return fmt.Sprintf("base layer %s is corrupt: its image digest is %s, layer.json says %s", e.Dir, e.Got, e.Want)
}

// e2fsEnv is the environment of every e2fsprogs run. e2fsprogs 1.47.0
// honours E2FSPROGS_FAKE_TIME (superblock times, crtime, inodes it creates)
// in mke2fs, debugfs, resize2fs and tune2fs; it does not read
// SOURCE_DATE_EPOCH, which is set for later versions that do.
func e2fsEnv(epoch int64) []string {
	e := strconv.FormatInt(epoch, 10)
	return []string{"E2FSPROGS_FAKE_TIME=" + e, "SOURCE_DATE_EPOCH=" + e, "LC_ALL=C"}
}

// writeScript writes the delta script and its xattr blobs into work.
func writeScript(work string, script []byte, blobs [][]byte) error {
	if len(blobs) > 0 {
		dir := filepath.Join(work, "xattrs")
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		for i, v := range blobs {
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), v, 0o600); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(filepath.Join(work, "delta.debugfs"), script, 0o600)
}

// finishRoot turns the layer copied into image into the image's root
// filesystem: resize2fs grows it to size bytes (when grow), debugfs runs
// work/delta.debugfs (which starts by setting the image's UUID). The tools reach image
// through a link in work (its name could hold a "?", which e2fsprogs reads
// as the start of I/O options).
func finishRoot(ctx context.Context, o Options, work, image string, size int64, grow bool) error {
	dev := "root.img"
	abs, err := filepath.Abs(image)
	if err != nil {
		return err
	}
	if err := os.Symlink(abs, filepath.Join(work, dev)); err != nil {
		return err
	}
	env := e2fsEnv(o.SourceDateEpoch)
	run := func(t Tool, args ...string) ([]byte, error) {
		_, stderr, err := o.Tools.Runner.Run(ctx, Cmd{Tool: t, Args: args, Env: env, Dir: work})
		return stderr, err
	}
	if grow {
		if _, err := run(o.Tools.Resize2fs, "-f", dev, strconv.FormatInt(size/ext4BlockSize, 10)); err != nil {
			return fmt.Errorf("growing the root filesystem to %d MiB: %w", size/mib, err)
		}
	}
	stderr, err := run(o.Tools.Debugfs, "-w", "-f", "delta.debugfs", dev)
	if err != nil {
		return fmt.Errorf("adding the build's files to the root filesystem: %w", err)
	}
	// debugfs exits 0 even when commands fail; their errors go to stderr.
	if errs := debugfsErrors(stderr); len(errs) > 0 {
		more := ""
		if len(errs) > 10 {
			more = fmt.Sprintf(" (and %d more)", len(errs)-10)
			errs = errs[:10]
		}
		return fmt.Errorf("debugfs failed adding the build's files: %s%s", strings.Join(errs, "; "), more)
	}
	return nil
}

// shiftRight moves the first n bytes of f by bytes towards its end, leaving
// zeros (holes) in front: FALLOC_FL_INSERT_RANGE where the filesystem has it
// (ext4, XFS: no data moves), else a copy from the end backwards.
func shiftRight(ctx context.Context, f *os.File, n, by int64) error {
	if err := f.Truncate(n); err != nil {
		return err
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_INSERT_RANGE, 0, by)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("inserting %d bytes: %w", by, err)
	}
	return shiftCopy(ctx, f, n, by)
}

// shiftCopy is shiftRight by copying, in chunks from the end, skipping
// zeros; the front is zeroed after.
func shiftCopy(ctx context.Context, f *os.File, n, by int64) error {
	if err := f.Truncate(n + by); err != nil {
		return err
	}
	buf := make([]byte, 4*mib)
	zero := make([]byte, len(buf))
	for end := n; end > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := max(0, end-int64(len(buf)))
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil {
			return err
		}
		if !bytes.Equal(chunk, zero[:len(chunk)]) {
			if _, err := f.WriteAt(chunk, start+by); err != nil {
				return err
			}
		} else if start+by < n {
			// The target still holds data of its own: clear it.
			if _, err := f.WriteAt(chunk, start+by); err != nil {
				return err
			}
		}
		end = start
	}
	for off := int64(0); off < min(by, n); off += int64(len(zero)) {
		if _, err := f.WriteAt(zero[:min(int64(len(zero)), min(by, n)-off)], off); err != nil {
			return err
		}
	}
	return nil
}

// ext4InodeCount reads s_inodes_count from the superblock of the ext4
// filesystem at off.
func ext4InodeCount(f *os.File, off int64) (int64, error) {
	var b [4]byte
	if _, err := f.ReadAt(b[:], off+1024); err != nil {
		return 0, fmt.Errorf("reading the root filesystem's superblock: %w", err)
	}
	return int64(binary.LittleEndian.Uint32(b[:])), nil
}
