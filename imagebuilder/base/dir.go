package base

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func openDir(ctx context.Context, root string) (*Base, error) {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, err
	}
	b := &Base{open: func(ctx context.Context) (io.ReadCloser, error) { return DirTar(ctx, root), nil }}
	r := DirTar(ctx, root)
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, err
	}
	b.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return b, nil
}

// DirTar streams the directory root as a tar: entries in path order, owners,
// modes, xattrs, hardlinks, device nodes and fifos as they are, mtimes zeroed
// (they do not reach the image), sockets skipped. Symlinks are never followed.
func DirTar(ctx context.Context, root string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := writeDir(ctx, tw, root)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

type inodeKey struct{ dev, ino uint64 }

func writeDir(ctx context.Context, tw *tar.Writer, root string) error {
	links := map[inodeKey]string{}
	return walkSorted(root, "", func(rel string, fi fs.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		full := filepath.Join(root, rel)
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat data", full)
		}
		name := "./" + filepath.ToSlash(rel)
		hdr := &tar.Header{
			Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		}
		if rel == "" {
			hdr.Name = "./"
		}
		xattrs, err := readXattrs(full)
		if err != nil {
			return err
		}
		for k, v := range xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		m := fi.Mode()
		switch {
		case m.IsDir():
			hdr.Typeflag = tar.TypeDir
			if rel != "" {
				hdr.Name += "/"
			}
		case m&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(full); err != nil {
				return err
			}
		case m.IsRegular():
			key := inodeKey{uint64(st.Dev), st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return tw.WriteHeader(hdr)
			}
			if st.Nlink > 1 {
				links[key] = name
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			return copyFile(tw, full, st)
		case m&fs.ModeCharDevice != 0:
			hdr.Typeflag = tar.TypeChar
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
		case m&fs.ModeDevice != 0:
			hdr.Typeflag = tar.TypeBlock
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
		case m&fs.ModeNamedPipe != 0:
			hdr.Typeflag = tar.TypeFifo
		default: // sockets: recreated by their services
			return nil
		}
		return tw.WriteHeader(hdr)
	})
}

// walkSorted calls fn for root and everything below it, in byte order of
// the relative paths, without following symlinks.
func walkSorted(root, rel string, fn func(rel string, fi fs.FileInfo) error) error {
	full := filepath.Join(root, rel)
	fi, err := os.Lstat(full)
	if err != nil {
		return err
	}
	if err := fn(rel, fi); err != nil {
		return err
	}
	if !fi.IsDir() {
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading %s: %w", full, err)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := walkSorted(root, filepath.Join(rel, n), fn); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies a regular file's contents, refusing to follow a symlink
// swapped in since it was listed and checking it is the same inode.
func copyFile(w io.Writer, full string, want *syscall.Stat_t) error {
	f, err := os.OpenFile(full, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Ino != want.Ino || st.Size != want.Size {
		return fmt.Errorf("%s changed while it was read", full)
	}
	n, err := io.Copy(w, f)
	if err == nil && n != want.Size {
		err = fmt.Errorf("%s: read %d bytes, expected %d", full, n, want.Size)
	}
	return err
}

// readXattrs returns the extended attributes of full (not following
// symlinks); file systems without xattr support give none.
func readXattrs(full string) (map[string]string, error) {
	size, err := unix.Llistxattr(full, nil)
	if err != nil || size == 0 {
		if err == nil || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing xattrs of %s: %w", full, err)
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(full, buf)
	if err != nil {
		return nil, fmt.Errorf("listing xattrs of %s: %w", full, err)
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "system.") {
			continue // ACLs and NFS internals are not carried
		}
		n, err := unix.Lgetxattr(full, name, nil)
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, full, err)
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(full, name, v); err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, full, err)
		}
		out[name] = string(v[:n])
	}
	return out, nil
}
