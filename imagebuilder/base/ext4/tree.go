package ext4

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Tar streams the file system's tree as an uncompressed tar: "./" first,
// then every entry in path order, mtimes zeroed. The root's lost+found
// (made by mkfs, not content) is left out.
func (fs *FS) Tar(ctx context.Context) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		w := &walker{fs: fs, tw: tw, ctx: ctx, links: map[uint32]string{}, dirs: map[uint32]bool{}}
		err := w.walk(rootInode, "")
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// MaxFileSize bounds a regular file of the tree: a hostile or sparse inode
// cannot make the stream endless.
const MaxFileSize = 64 << 30

type walker struct {
	fs    *FS
	tw    *tar.Writer
	ctx   context.Context
	links map[uint32]string // inode → first tar name, for hardlinks
	dirs  map[uint32]bool   // directories visited, against loops
}

type dirent struct {
	name  string
	inode uint32
}

func (w *walker) walk(num uint32, rel string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	in, err := w.fs.readInode(num)
	if err != nil {
		return fmt.Errorf("/%s: %w", rel, err)
	}
	name := "./" + rel
	hdr := &tar.Header{
		Name: name, Mode: int64(in.mode & 0o7777), Uid: int(in.uid), Gid: int(in.gid),
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}
	xattrs, err := w.fs.xattrs(in)
	if err != nil {
		return fmt.Errorf("/%s: %w", rel, err)
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}
	switch in.mode & modeTypeMask {
	case modeDir:
		if w.dirs[num] {
			return fmt.Errorf("/%s: directory loop (inode %d)", rel, num)
		}
		w.dirs[num] = true
		hdr.Typeflag = tar.TypeDir
		if rel != "" {
			hdr.Name += "/"
		}
		if err := w.tw.WriteHeader(hdr); err != nil {
			return err
		}
		entries, err := w.fs.readDir(in)
		if err != nil {
			return fmt.Errorf("/%s: %w", rel, err)
		}
		for _, e := range entries {
			if rel == "" && e.name == "lost+found" {
				continue
			}
			child := e.name
			if rel != "" {
				child = rel + "/" + e.name
			}
			if err := w.walk(e.inode, child); err != nil {
				return err
			}
		}
		return nil
	case modeReg:
		if first, ok := w.links[num]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return w.tw.WriteHeader(hdr)
		}
		if in.links > 1 {
			w.links[num] = name
		}
		if in.size > MaxFileSize {
			return fmt.Errorf("/%s: %d bytes is more than the %d a base file may have (a sparse file? remove it from the image)", rel, in.size, int64(MaxFileSize))
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, in.size
		if err := w.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if err := w.fs.copyData(w.tw, in); err != nil {
			return fmt.Errorf("/%s: %w", rel, err)
		}
		return nil
	case modeSymlink:
		target, err := w.fs.readlink(in)
		if err != nil {
			return fmt.Errorf("/%s: %w", rel, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case modeChar, modeBlock:
		hdr.Typeflag = tar.TypeChar
		if in.mode&modeTypeMask == modeBlock {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = devNumbers(in.block)
	case modeFifo:
		hdr.Typeflag = tar.TypeFifo
	case modeSocket:
		return nil
	default:
		return fmt.Errorf("/%s: unknown file type %#o", rel, in.mode&modeTypeMask)
	}
	return w.tw.WriteHeader(hdr)
}

// readDir lists a directory's entries (without "." and ".."), sorted by
// name. Hash-tree directories read linearly: their index blocks look like
// empty entries.
func (fs *FS) readDir(in *inode) ([]dirent, error) {
	var buf bytes.Buffer
	if in.size > 64<<20 {
		return nil, fmt.Errorf("directory of %d bytes", in.size)
	}
	if err := fs.copyData(&buf, in); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	le := binary.LittleEndian
	var out []dirent
	for block := int64(0); block < int64(len(data)); block += fs.blockSize {
		b := data[block:min(block+fs.blockSize, int64(len(data)))]
		for off := 0; off+8 <= len(b); {
			ino := le.Uint32(b[off:])
			recLen := int(le.Uint16(b[off+4:]))
			nameLen := int(b[off+6])
			if !fs.fileType {
				nameLen = int(le.Uint16(b[off+6:]))
			}
			if recLen < 8 || off+recLen > len(b) || 8+nameLen > recLen {
				return nil, fmt.Errorf("corrupt directory entry at byte %d", block+int64(off))
			}
			name := string(b[off+8 : off+8+nameLen])
			off += recLen
			if ino == 0 || name == "." || name == ".." {
				continue
			}
			if name == "" || strings.ContainsAny(name, "/\x00") {
				return nil, fmt.Errorf("directory entry %q: invalid name", name)
			}
			out = append(out, dirent{name: name, inode: ino})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	for i := 1; i < len(out); i++ {
		if out[i].name == out[i-1].name {
			return nil, fmt.Errorf("directory entry %q appears twice", out[i].name)
		}
	}
	return out, nil
}

// readlink returns a symlink's target: in the inode for short ("fast")
// symlinks, else in its data.
func (fs *FS) readlink(in *inode) (string, error) {
	if in.size == 0 || in.size > 4096 {
		return "", fmt.Errorf("symlink target of %d bytes", in.size)
	}
	if in.flags&flagExtents == 0 && in.size < 60 {
		return string(in.block[:in.size]), nil
	}
	var buf bytes.Buffer
	if err := fs.copyData(&buf, in); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// devNumbers decodes a device node's numbers from i_block (old and new
// encodings, as the kernel does).
func devNumbers(b [60]byte) (int64, int64) {
	le := binary.LittleEndian
	if old := le.Uint32(b[0:]); old != 0 {
		return int64((old >> 8) & 0xff), int64(old & 0xff)
	}
	dev := le.Uint32(b[4:])
	return int64((dev & 0xfff00) >> 8), int64((dev & 0xff) | ((dev >> 12) & 0xfff00))
}

var xattrPrefixes = map[byte]string{1: "user.", 4: "trusted.", 6: "security."}

const xattrMagic = 0xea020000

// xattrs returns the user, trusted and security attributes of an inode,
// from the inode's extra space and its xattr block. system.* (ACLs, in an
// ext4-specific encoding) are not carried.
func (fs *FS) xattrs(in *inode) (map[string]string, error) {
	out := map[string]string{}
	le := binary.LittleEndian
	if fs.inodeSize > 128 {
		extra := int64(le.Uint16(in.raw[0x80:]))
		start := 128 + extra
		if start+4 <= fs.inodeSize && le.Uint32(in.raw[start:]) == xattrMagic {
			region := in.raw[start+4:]
			if err := parseXattrs(region, region, out); err != nil {
				return nil, fmt.Errorf("in-inode xattrs: %w", err)
			}
		}
	}
	if in.xattrBlock != 0 {
		blk := make([]byte, fs.blockSize)
		if _, err := fs.r.ReadAt(blk, in.xattrBlock*fs.blockSize); err != nil {
			return nil, fmt.Errorf("reading xattr block: %w", err)
		}
		if le.Uint32(blk) != xattrMagic {
			return nil, errors.New("xattr block: bad magic")
		}
		if err := parseXattrs(blk[32:], blk, out); err != nil {
			return nil, fmt.Errorf("xattr block: %w", err)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// parseXattrs reads entries from ents; value offsets count from base.
func parseXattrs(ents, base []byte, out map[string]string) error {
	le := binary.LittleEndian
	for off := 0; off+16 <= len(ents); {
		if le.Uint32(ents[off:]) == 0 {
			return nil
		}
		nameLen := int(ents[off])
		index := ents[off+1]
		valOff := int(le.Uint16(ents[off+2:]))
		valInode := le.Uint32(ents[off+4:])
		valSize := int(le.Uint32(ents[off+8:]))
		if off+16+nameLen > len(ents) {
			return errors.New("entry runs past its region")
		}
		name := string(ents[off+16 : off+16+nameLen])
		off += (16 + nameLen + 3) &^ 3
		prefix, ok := xattrPrefixes[index]
		if !ok {
			continue
		}
		if valInode != 0 {
			return fmt.Errorf("%s%s: value in a separate inode is not supported", prefix, name)
		}
		if valOff+valSize > len(base) {
			return fmt.Errorf("%s%s: value runs past its region", prefix, name)
		}
		out[prefix+name] = string(base[valOff : valOff+valSize])
	}
	return nil
}
