package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"imagebuilder/overlay"
)

// staged is what the staging directory holds at one path: what mkfs.ext4 -d
// will copy into the inode.
type staged struct {
	Kind                overlay.Kind // KindFile, KindDir or KindSymlink
	UID, GID            int
	Perm                uint32 // 07777
	Atime, Mtime, Ctime int64
	Xattrs              map[string][]byte
	Size                int64
	Ino                 uint64
	Nlink               uint64
}

// scanStaging lstats every path below root (tree-relative keys, "" for the
// root itself) and reads its xattrs.
func scanStaging(root string) (map[string]staged, error) {
	out := map[string]staged{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			rel = ""
		}
		rel = filepath.ToSlash(rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("staging dir: %w", err)
		}
		s := staged{
			UID: int(st.Uid), GID: int(st.Gid), Perm: st.Mode & 0o7777,
			Atime: st.Atim.Sec, Mtime: st.Mtim.Sec, Ctime: st.Ctim.Sec,
			Size: st.Size, Ino: st.Ino, Nlink: uint64(st.Nlink),
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			s.Kind = overlay.KindFile
		case unix.S_IFDIR:
			s.Kind = overlay.KindDir
		case unix.S_IFLNK:
			s.Kind = overlay.KindSymlink
		default:
			return fmt.Errorf("staging dir holds /%s of type %#o: device nodes, fifos and sockets must exist only as tree entries", rel, st.Mode&unix.S_IFMT)
		}
		x, err := readXattrs(p)
		if err != nil {
			return fmt.Errorf("staging dir: xattrs of /%s: %w", rel, err)
		}
		s.Xattrs = x
		out[rel] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning staging dir %s: %w", root, err)
	}
	return out, nil
}

// readXattrs returns the extended attributes of p (not following symlinks).
// A filesystem without xattr support has none.
func readXattrs(p string) (map[string][]byte, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, name := range splitNul(buf[:size]) {
		n, err := unix.Lgetxattr(p, name, nil)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		v := make([]byte, n)
		n, err = unix.Lgetxattr(p, name, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = v[:n]
	}
	return out, nil
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
