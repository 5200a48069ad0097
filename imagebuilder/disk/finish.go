package disk

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// finishRoot turns the layer copied into the disk image at offset off into
// the image's root filesystem: resize2fs grows it to size bytes (when grow),
// tune2fs gives it the image's UUID, debugfs runs work/delta.debugfs. The
// tools reach the filesystem as "disk?offset=N" (e2fsprogs' unix I/O
// option) through a link in work, so no loop device or copy is needed.
func finishRoot(ctx context.Context, o Options, work, image string, off, size int64, grow bool, uuid string) error {
	link := filepath.Join(work, "disk")
	if err := os.Symlink(image, link); err != nil {
		return err
	}
	dev := "disk?offset=" + strconv.FormatInt(off, 10)
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
	if _, err := run(o.Tools.Tune2fs, "-U", uuid, dev); err != nil {
		return fmt.Errorf("setting the root filesystem UUID: %w", err)
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

// ext4InodeCount reads s_inodes_count from the superblock of the ext4
// filesystem at off.
func ext4InodeCount(f *os.File, off int64) (int64, error) {
	var b [4]byte
	if _, err := f.ReadAt(b[:], off+1024); err != nil {
		return 0, fmt.Errorf("reading the root filesystem's superblock: %w", err)
	}
	return int64(binary.LittleEndian.Uint32(b[:])), nil
}
