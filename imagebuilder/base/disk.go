package base

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"imagebuilder/imagebuilder/base/ext4"
)

// GPT partition types of a Linux root.
const (
	gptLinuxRootX86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	gptLinuxFilesystem = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// openDisk reads the ext4 root of a raw or qcow2 disk image. qcow2 is first
// converted to a temporary raw file with qemu-img (no root, no nbd device).
func openDisk(ctx context.Context, log *slog.Logger, kind Kind, p string, o Options) (*Base, error) {
	sum, err := o.fileDigest(p)
	if err != nil {
		return nil, err
	}
	b := &Base{Digest: "sha256:" + sum}
	raw := p
	if kind == KindQcow2 {
		tmp, err := os.MkdirTemp("", "imagebuilder-base-")
		if err != nil {
			return nil, err
		}
		b.cleanup = append(b.cleanup, func() error { return os.RemoveAll(tmp) })
		raw = filepath.Join(tmp, "disk.raw")
		log.Info("converting qcow2 base to raw", "from", p, "to", raw)
		cmd := exec.CommandContext(ctx, "qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", p, raw)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Close()
			if errors.Is(err, exec.ErrNotFound) {
				return nil, errors.New("qemu-img is needed to read qcow2 images: apt-get install qemu-utils")
			}
			return nil, fmt.Errorf("qemu-img convert: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	start, size, err := rootPartition(raw)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.open = func(ctx context.Context) (io.ReadCloser, error) {
		f, err := os.Open(raw)
		if err != nil {
			return nil, err
		}
		fsys, err := ext4.Open(io.NewSectionReader(f, start, size))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("root partition at byte %d: %w", start, err)
		}
		r := fsys.Tar(ctx)
		return &readCloser{Reader: r, close: func() error { r.Close(); return f.Close() }}, nil
	}
	return b, nil
}

// rootPartition finds the root file system of a disk image: the GPT
// partition typed "Linux root (x86-64)", else the largest ext4 partition
// (GPT "Linux filesystem" or MBR type 0x83), else a whole-disk ext4.
func rootPartition(raw string) (start, size int64, err error) {
	fi, err := os.Stat(raw)
	if err != nil {
		return 0, 0, err
	}
	if isExt4(raw, 0) {
		return 0, fi.Size(), nil
	}
	d, err := diskfs.Open(raw, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return 0, 0, fmt.Errorf("reading disk image: %w", err)
	}
	defer d.Close()
	table, err := d.GetPartitionTable()
	if err != nil {
		return 0, 0, fmt.Errorf("reading the partition table: %w", err)
	}
	type cand struct {
		n           int
		start, size int64
		root        bool
	}
	var cands []cand
	var seen []string
	switch t := table.(type) {
	case *gpt.Table:
		for i, p := range t.Partitions {
			if p == nil || p.Start == 0 {
				continue
			}
			typ := strings.ToUpper(string(p.Type))
			seen = append(seen, fmt.Sprintf("%d:%s", i+1, typ))
			if typ == gptLinuxRootX86_64 || typ == gptLinuxFilesystem {
				cands = append(cands, cand{i + 1, int64(p.Start) * int64(t.LogicalSectorSize), int64(p.Size), typ == gptLinuxRootX86_64})
			}
		}
	case *mbr.Table:
		for i, p := range t.Partitions {
			if p == nil || p.Size == 0 {
				continue
			}
			seen = append(seen, fmt.Sprintf("%d:0x%02x", i+1, byte(p.Type)))
			if p.Type == mbr.Linux {
				cands = append(cands, cand{i + 1, int64(p.Start) * int64(t.LogicalSectorSize), int64(p.Size) * int64(t.LogicalSectorSize), false})
			}
		}
	default:
		return 0, 0, errors.New("unknown partition table")
	}
	var best *cand
	for i := range cands {
		c := &cands[i]
		if !isExt4(raw, c.start) {
			continue
		}
		if best == nil || (c.root && !best.root) || (c.root == best.root && c.size > best.size) {
			best = c
		}
	}
	if best == nil {
		return 0, 0, fmt.Errorf("no ext4 Linux root partition found (partitions: %s); XFS and LVM roots need the in-place path", strings.Join(seen, ", "))
	}
	return best.start, best.size, nil
}

// isExt4 checks the ext2/3/4 superblock magic of a file system at off.
func isExt4(raw string, off int64) bool {
	f, err := os.Open(raw)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 2)
	if _, err := f.ReadAt(magic, off+1024+0x38); err != nil {
		return false
	}
	return magic[0] == 0x53 && magic[1] == 0xef
}
