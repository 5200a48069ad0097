// Package ext4 reads an ext4 (or ext2/3 made with extents) file system from
// an io.ReaderAt and streams its tree as a tar, with owners, modes, xattrs,
// symlinks, hardlinks and device nodes: enough to use a disk image's root as
// a base without mounting it (no root, no loop device).
//
// Not supported (refused with a message): inline data, encryption, meta_bg,
// xattrs in separate inodes, files that use block maps instead of extents,
// and a journal that still needs recovery.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	superblockOffset = 1024
	magic            = 0xef53

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompat64Bit       = 0x80
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000

	rootInode = 2
)

// FS is an opened ext4 file system.
type FS struct {
	r               io.ReaderAt
	blockSize       int64
	inodesPerGroup  uint32
	inodeSize       int64
	descSize        int64
	gdtBlock        int64
	groups          uint32
	fileType        bool
	inodeTableCache map[uint32]int64
}

// Open reads the superblock and checks that this reader can handle the
// file system.
func Open(r io.ReaderAt) (*FS, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, superblockOffset); err != nil {
		return nil, fmt.Errorf("reading the ext4 superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != magic {
		return nil, errors.New("not an ext2/3/4 file system (bad superblock magic)")
	}
	logBlock := le.Uint32(sb[0x18:])
	if logBlock > 6 {
		return nil, fmt.Errorf("ext4: unsupported block size 2^%d KiB", logBlock)
	}
	fs := &FS{
		r:               r,
		blockSize:       1024 << logBlock,
		inodesPerGroup:  le.Uint32(sb[0x28:]),
		inodeSize:       128,
		descSize:        32,
		inodeTableCache: map[uint32]int64{},
	}
	if le.Uint32(sb[0x4c:]) >= 1 {
		fs.inodeSize = int64(le.Uint16(sb[0x58:]))
	}
	incompat := le.Uint32(sb[0x60:])
	for _, f := range []struct {
		bit  uint32
		what string
	}{
		{incompatCompression, "compression"},
		{incompatRecover, "a journal that needs recovery (the image was not cleanly unmounted; run e2fsck -fy on a copy)"},
		{incompatJournalDev, "an external journal device"},
		{incompatMetaBG, "meta_bg"},
		{incompatEAInode, "xattrs in inodes (ea_inode)"},
		{incompatDirData, "dirdata"},
		{incompatInlineData, "inline data"},
		{incompatEncrypt, "encryption"},
	} {
		if incompat&f.bit != 0 {
			return nil, fmt.Errorf("ext4: the file system uses %s, which this reader does not support", f.what)
		}
	}
	fs.fileType = incompat&incompatFiletype != 0
	if incompat&incompat64Bit != 0 {
		fs.descSize = int64(le.Uint16(sb[0xfe:]))
		if fs.descSize < 32 {
			fs.descSize = 32
		}
	}
	if fs.inodesPerGroup == 0 || fs.inodeSize < 128 {
		return nil, errors.New("ext4: corrupt superblock (inodes per group or inode size)")
	}
	firstData := int64(le.Uint32(sb[0x14:]))
	fs.gdtBlock = firstData + 1
	fs.groups = (le.Uint32(sb[0x00:]) + fs.inodesPerGroup - 1) / fs.inodesPerGroup
	return fs, nil
}

// inode is what the tree needs of an on-disk inode.
type inode struct {
	num        uint32
	mode       uint16
	uid, gid   uint32
	size       int64
	links      uint16
	flags      uint32
	block      [60]byte
	xattrBlock int64
	raw        []byte // the whole on-disk inode, for in-inode xattrs
}

const (
	flagExtents    = 0x80000
	flagInlineData = 0x10000000

	modeTypeMask = 0xf000
	modeFifo     = 0x1000
	modeChar     = 0x2000
	modeDir      = 0x4000
	modeBlock    = 0x6000
	modeReg      = 0x8000
	modeSymlink  = 0xa000
	modeSocket   = 0xc000
)

func (fs *FS) inodeTable(group uint32) (int64, error) {
	if t, ok := fs.inodeTableCache[group]; ok {
		return t, nil
	}
	d := make([]byte, fs.descSize)
	if _, err := fs.r.ReadAt(d, fs.gdtBlock*fs.blockSize+int64(group)*fs.descSize); err != nil {
		return 0, fmt.Errorf("reading group descriptor %d: %w", group, err)
	}
	le := binary.LittleEndian
	t := int64(le.Uint32(d[0x8:]))
	if fs.descSize >= 64 {
		t |= int64(le.Uint32(d[0x28:])) << 32
	}
	fs.inodeTableCache[group] = t
	return t, nil
}

func (fs *FS) readInode(num uint32) (*inode, error) {
	if num == 0 {
		return nil, errors.New("inode 0")
	}
	group := (num - 1) / fs.inodesPerGroup
	if group >= fs.groups {
		return nil, fmt.Errorf("inode %d is beyond the file system's %d groups", num, fs.groups)
	}
	table, err := fs.inodeTable(group)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, fs.inodeSize)
	off := table*fs.blockSize + int64((num-1)%fs.inodesPerGroup)*fs.inodeSize
	if _, err := fs.r.ReadAt(raw, off); err != nil {
		return nil, fmt.Errorf("reading inode %d: %w", num, err)
	}
	le := binary.LittleEndian
	in := &inode{
		num:   num,
		mode:  le.Uint16(raw[0x0:]),
		uid:   uint32(le.Uint16(raw[0x2:])) | uint32(le.Uint16(raw[0x78:]))<<16,
		gid:   uint32(le.Uint16(raw[0x18:])) | uint32(le.Uint16(raw[0x7a:]))<<16,
		size:  int64(le.Uint32(raw[0x4:])) | int64(le.Uint32(raw[0x6c:]))<<32,
		links: le.Uint16(raw[0x1a:]),
		flags: le.Uint32(raw[0x20:]),
		raw:   raw,
	}
	in.xattrBlock = int64(le.Uint32(raw[0x68:])) | int64(le.Uint16(raw[0x76:]))<<32
	copy(in.block[:], raw[0x28:0x28+60])
	if in.size < 0 {
		return nil, fmt.Errorf("inode %d: negative size", num)
	}
	return in, nil
}

// extent maps file blocks [logical, logical+length) to disk blocks from start.
type extent struct {
	logical, length int64
	start           int64
	uninit          bool
}

// extents returns the inode's extents in logical order.
func (fs *FS) extents(in *inode) ([]extent, error) {
	if in.flags&flagInlineData != 0 {
		return nil, errors.New("inline data is not supported")
	}
	if in.flags&flagExtents == 0 {
		if in.size == 0 {
			return nil, nil
		}
		return nil, errors.New("block-mapped (non-extent) files are not supported")
	}
	var out []extent
	if err := fs.walkExtents(in.block[:], 0, &out, map[int64]bool{}); err != nil {
		return nil, fmt.Errorf("inode %d: %w", in.num, err)
	}
	return out, nil
}

// walkExtents collects the leaves below node. seen holds the index blocks
// already read: a block referenced twice is corruption (or a hostile image
// trying to make the walk exponential).
func (fs *FS) walkExtents(node []byte, depth int, out *[]extent, seen map[int64]bool) error {
	le := binary.LittleEndian
	if len(node) < 12 || le.Uint16(node[0:]) != 0xf30a {
		return errors.New("bad extent header")
	}
	entries := int(le.Uint16(node[2:]))
	d := int(le.Uint16(node[6:]))
	if depth > 5 || 12+entries*12 > len(node) {
		return errors.New("corrupt extent tree")
	}
	for i := 0; i < entries; i++ {
		e := node[12+i*12 : 24+i*12]
		if d == 0 {
			length := int64(le.Uint16(e[4:]))
			uninit := length > 32768
			if uninit {
				length -= 32768
			}
			*out = append(*out, extent{
				logical: int64(le.Uint32(e[0:])),
				length:  length,
				start:   int64(le.Uint32(e[8:])) | int64(le.Uint16(e[6:]))<<32,
				uninit:  uninit,
			})
			continue
		}
		leaf := int64(le.Uint32(e[4:])) | int64(le.Uint16(e[8:]))<<32
		if seen[leaf] {
			return fmt.Errorf("extent block %d referenced twice", leaf)
		}
		seen[leaf] = true
		child := make([]byte, fs.blockSize)
		if _, err := fs.r.ReadAt(child, leaf*fs.blockSize); err != nil {
			return fmt.Errorf("reading extent block %d: %w", leaf, err)
		}
		if err := fs.walkExtents(child, depth+1, out, seen); err != nil {
			return err
		}
	}
	return nil
}

// copyData writes the inode's size bytes of contents to w: extents read
// from disk, holes and unwritten extents as zeros.
func (fs *FS) copyData(w io.Writer, in *inode) error {
	exts, err := fs.extents(in)
	if err != nil {
		return err
	}
	var pos int64 // bytes written
	zeros := func(n int64) error {
		_, err := io.CopyN(w, zeroReader{}, n)
		return err
	}
	for _, e := range exts {
		from := e.logical * fs.blockSize
		if from >= in.size {
			break
		}
		if from < pos {
			return fmt.Errorf("inode %d: overlapping extents", in.num)
		}
		if err := zeros(from - pos); err != nil {
			return err
		}
		pos = from
		n := min(e.length*fs.blockSize, in.size-pos)
		if e.uninit {
			err = zeros(n)
		} else {
			_, err = io.CopyN(w, io.NewSectionReader(fs.r, e.start*fs.blockSize, n), n)
		}
		if err != nil {
			return fmt.Errorf("inode %d: %w", in.num, err)
		}
		pos += n
	}
	return zeros(in.size - pos)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
