package disk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"imagebuilder/overlay"
)

const (
	ext4BlockSize = 4096
	ext4InodeSize = 256
	mib           = 1 << 20
)

// mke2fsConf pins the features and geometry of the root filesystem, so the
// image does not depend on the build machine's /etc/mke2fs.conf (passed via
// MKE2FS_CONFIG). The feature set is what Debian 12's e2fsprogs 1.47.0
// enables by default, which every kernel since 4.x mounts, plus
// metadata_csum_seed (kernel 4.4): checksums do not depend on the UUID, so
// each image built on a shared base layer gets its own UUID without a
// rewrite of every checksum.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 5.0

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,metadata_csum_seed,64bit,dir_nlink,extra_isize
		inode_size = 256
	}
`

// ext4Plan is the size and inode count of the root filesystem.
type ext4Plan struct {
	Bytes  int64
	Inodes int64
	// MinBytes is the smallest size the content fits in (without headroom).
	MinBytes int64
}

// stagedBlocks counts the filesystem blocks the staged content needs.
func stagedBlocks(st map[string]staged) int64 {
	var blocks int64
	seen := map[uint64]bool{}
	for _, s := range st {
		switch s.Kind {
		case overlay.KindFile:
			if s.Nlink > 1 {
				if seen[s.Ino] {
					continue
				}
				seen[s.Ino] = true
			}
			blocks += (s.Size + ext4BlockSize - 1) / ext4BlockSize
		case overlay.KindDir:
			blocks += max(1, (s.Size+ext4BlockSize-1)/ext4BlockSize)
		case overlay.KindSymlink:
			if s.Size >= 60 { // longer targets do not fit in the inode
				blocks++
			}
		}
		blocks += xattrBlocks(s.Xattrs)
	}
	return blocks
}

// entryBlocks counts the blocks one tree entry needs (hardlinks none).
func entryBlocks(e *overlay.Entry) int64 {
	var blocks int64
	switch e.Kind {
	case overlay.KindFile:
		blocks = (e.Size + ext4BlockSize - 1) / ext4BlockSize
	case overlay.KindDir:
		blocks = 1
	case overlay.KindSymlink:
		if len(e.Link) >= 60 {
			blocks = 1
		}
	case overlay.KindHardlink:
		return 0
	}
	return blocks + xattrBlocks(e.Xattrs)
}

// xattrBlocks is 1 when the xattrs do not fit in a 256-byte inode.
func xattrBlocks(x map[string][]byte) int64 {
	var n int
	for k, v := range x {
		n += len(k) + len(v) + 16
	}
	if n > 96 {
		return 1
	}
	return 0
}

// planBlocks sizes a root filesystem for data blocks and entries: the data
// plus 30% headroom, inode tables for the entries plus 30%, the journal
// mke2fs would pick, and the 5% reserved for root; rounded up to MiB.
func planBlocks(blocks, entries int64) ext4Plan {
	inodes := entries*13/10 + 1024
	meta := inodes*ext4InodeSize + 8*mib
	size := func(data int64) int64 {
		s := (data + meta) * 100 / 95
		s += journalBlocks(s/ext4BlockSize) * ext4BlockSize
		return roundUp(s, mib)
	}
	data := blocks * ext4BlockSize
	return ext4Plan{Bytes: size(data * 13 / 10), Inodes: inodes, MinBytes: size(data)}
}

// journalBlocks is e2fsprogs' default journal size for a filesystem of n
// blocks (ext2fs_default_journal_size).
func journalBlocks(n int64) int64 {
	switch {
	case n < 2048:
		return 0
	case n < 32768:
		return 1024
	case n < 256*1024:
		return 4096
	case n < 512*1024:
		return 8192
	case n < 4096*1024:
		return 16384
	case n < 8192*1024:
		return 32768
	case n < 16384*1024:
		return 65536
	case n < 32768*1024:
		return 131072
	}
	return 262144
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// ext4Build is one root filesystem build.
type ext4Build struct {
	Tools   Tools
	Tree    *overlay.Tree
	Staged  map[string]staged
	Plan    ext4Plan
	UUIDs   UUIDs
	Epoch   int64
	WorkDir string // scratch space for the image, config and script
}

// env is the environment of the e2fsprogs runs (see e2fsEnv).
func (b *ext4Build) env(conf string) []string {
	return append([]string{"MKE2FS_CONFIG=" + conf}, e2fsEnv(b.Epoch)...)
}

// mkfsArgs are the mkfs.ext4 arguments for image img.
func (b *ext4Build) mkfsArgs(img string) []string {
	return []string{
		"-q", "-F", "-t", "ext4",
		"-b", strconv.Itoa(ext4BlockSize), "-I", strconv.Itoa(ext4InodeSize),
		"-N", strconv.FormatInt(b.Plan.Inodes, 10),
		"-U", b.UUIDs.RootFS,
		"-E", "root_owner=0:0,hash_seed=" + b.UUIDs.RootHashSeed + ",assume_storage_prezeroed=1",
		"-d", b.Tree.Root,
		img,
	}
}

// build writes the root filesystem image to WorkDir/root.ext4 and returns
// its path.
func (b *ext4Build) build(ctx context.Context, t *Timings) (string, *fixups, error) {
	conf := filepath.Join(b.WorkDir, "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return "", nil, err
	}
	img := filepath.Join(b.WorkDir, "root.ext4")
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, err
	}
	err = f.Truncate(b.Plan.Bytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", nil, fmt.Errorf("sizing root filesystem image: %w", err)
	}
	env := b.env(conf)
	start := time.Now()
	if _, _, err := b.Tools.Runner.Run(ctx, Cmd{Tool: b.Tools.MkfsExt4, Args: b.mkfsArgs(img), Env: env}); err != nil {
		return "", nil, fmt.Errorf("creating ext4 root filesystem (%d MiB): %w", b.Plan.Bytes/mib, err)
	}
	t.Mkfs = time.Since(start)
	start = time.Now()
	fx, err := b.fixup(ctx, img, env)
	if err != nil {
		return "", nil, err
	}
	t.Debugfs = time.Since(start)
	return img, fx, nil
}

// fixup runs the debugfs script that makes owners, modes, special files,
// xattrs and times match the tree.
func (b *ext4Build) fixup(ctx context.Context, img string, env []string) (*fixups, error) {
	blobDir := filepath.Join(b.WorkDir, "xattrs")
	entries := make([]*overlay.Entry, 0, len(b.Tree.Entries)+1)
	for _, e := range b.Tree.Entries {
		entries = append(entries, e)
	}
	if _, ok := b.Tree.Entries[""]; !ok {
		// A tree without a root entry gets the usual root directory
		// rather than the staging dir's (often 0700) mode.
		entries = append(entries, &overlay.Entry{Kind: overlay.KindDir, Mode: 0o755})
	}
	fx, err := planFixups(entries, b.Staged, b.Epoch, blobDir)
	if err != nil {
		return nil, err
	}
	// The superblock counts the kilobytes ever written; the fixups differ
	// with the build user (root needs fewer), so zero the counter last. A
	// zero counter is not updated when debugfs closes the filesystem.
	fx.Script = append(fx.Script, "ssv kbytes_written 0\n"...)
	if len(fx.Blobs) > 0 {
		if err := os.Mkdir(blobDir, 0o700); err != nil {
			return nil, err
		}
		for i, v := range fx.Blobs {
			if err := os.WriteFile(filepath.Join(blobDir, strconv.Itoa(i)), v, 0o600); err != nil {
				return nil, err
			}
		}
	}
	script := filepath.Join(b.WorkDir, "fixup.debugfs")
	if err := os.WriteFile(script, fx.Script, 0o600); err != nil {
		return nil, err
	}
	_, stderr, err := b.Tools.Runner.Run(ctx, Cmd{Tool: b.Tools.Debugfs, Args: []string{"-w", "-f", script, img}, Env: env})
	if err != nil {
		return nil, fmt.Errorf("fixing up root filesystem metadata: %w", err)
	}
	// debugfs exits 0 even when commands fail; their errors go to stderr.
	if errs := debugfsErrors(stderr); len(errs) > 0 {
		more := ""
		if len(errs) > 10 {
			more = fmt.Sprintf(" (and %d more)", len(errs)-10)
			errs = errs[:10]
		}
		return nil, fmt.Errorf("debugfs fixups failed: %s%s", strings.Join(errs, "; "), more)
	}
	return fx, nil
}

// debugfsErrors returns debugfs's stderr lines other than its version
// banner.
func debugfsErrors(stderr []byte) []string {
	var out []string
	for _, l := range strings.Split(string(bytes.TrimSpace(stderr)), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "debugfs ") && strings.Contains(l, "(") && !strings.Contains(l, ":") {
			continue
		}
		out = append(out, l)
	}
	return out
}
