package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// how resolves every path of the overlay inside the image's root, following
// the image's own symlinks (lib -> usr/lib) as the booted host will.
var how = unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}

// syncEvery is how many overlay entries are applied between two syncs of
// the root. A sync writes the dirty data (allocating its blocks) and forces
// the log at points that depend on the overlay only; without them, XFS
// pushes its log in the background when it holds enough, and which
// transactions land in which checkpoint (and so the LSNs stamped on the
// metadata) would depend on timing.
const syncEvery = 64

// applyOverlay extracts the tar on /dev/vdb into root.
func applyOverlay(root *os.File) error {
	dev, err := os.Open("/dev/vdb")
	if err != nil {
		return fmt.Errorf("opening the overlay disk: %w", err)
	}
	defer dev.Close()
	rootfd := int(root.Fd())
	bin, err := openTrash(rootfd)
	if err != nil {
		return err
	}
	tr := tar.NewReader(dev)
	n := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the overlay: %w", err)
		}
		if err := extract(rootfd, bin, hdr, tr); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		n++
		if n%syncEvery == 0 {
			if err := unix.Syncfs(rootfd); err != nil {
				return fmt.Errorf("syncing the root: %w", err)
			}
		}
	}
	if err := unix.Syncfs(rootfd); err != nil {
		return fmt.Errorf("syncing the root: %w", err)
	}
	fmt.Printf("appliance: %d overlay entries applied\n", n)
	if err := relabel(rootfd); err != nil {
		return err
	}
	return bin.empty(rootfd)
}

func checkName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return "", errors.New("empty, absolute or NUL name refused")
	}
	for _, p := range strings.Split(name, "/") {
		if p == ".." {
			return "", errors.New(`".." component refused`)
		}
	}
	return path.Clean(name), nil
}

// openDir opens (creating as needed, root-owned 0755) directory rel inside
// the root.
func openDir(rootfd int, rel string) (int, error) {
	if rel == "." || rel == "" {
		return unix.Openat2(rootfd, ".", &how)
	}
	fd, err := unix.Openat2(rootfd, rel, &how)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	pfd, err := openDir(rootfd, path.Dir(rel))
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, path.Base(rel), 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	return unix.Openat2(rootfd, rel, &how)
}

func extract(rootfd int, bin *trash, hdr *tar.Header, r io.Reader) error {
	name, err := checkName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil // the root keeps the vendor's metadata
	}
	victim, err := whiteout(name)
	if err != nil {
		return err
	}
	if victim != "" {
		return bin.remove(rootfd, victim)
	}
	pfd, err := openDir(rootfd, path.Dir(name))
	if err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	defer unix.Close(pfd)
	base := path.Base(name)
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		err := unix.Mkdirat(pfd, base, 0o700)
		if errors.Is(err, unix.EEXIST) {
			return nil // an existing directory (or the vendor's symlink to one) stays as it is
		}
		if err != nil {
			return err
		}
		return setMeta(pfd, base, hdr, mode)
	case tar.TypeReg:
		if err := bin.put(pfd, base, false); err != nil {
			return err
		}
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), name)
		_, err = io.Copy(f, r)
		if err == nil {
			err = f.Chown(hdr.Uid, hdr.Gid)
		}
		if err == nil {
			err = unix.Fchmod(fd, mode)
		}
		if err == nil {
			err = setXattrs(fd, hdr)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return errors.New("empty symlink target")
		}
		if err := bin.put(pfd, base, false); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
		return unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
	case tar.TypeLink:
		target, err := checkName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hardlink target: %w", err)
		}
		tfd, err := unix.Openat2(rootfd, target, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: how.Resolve})
		if err != nil {
			return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		defer unix.Close(tfd)
		if err := bin.put(pfd, base, false); err != nil {
			return err
		}
		return unix.Linkat(tfd, "", pfd, base, unix.AT_EMPTY_PATH)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		if err := bin.put(pfd, base, false); err != nil {
			return err
		}
		if err := unix.Mknodat(pfd, base, kind|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return err
		}
		return setMeta(pfd, base, hdr, mode)
	}
	return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
}

func setMeta(pfd int, base string, hdr *tar.Header, mode uint32) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	return unix.Fchmodat(pfd, base, mode, 0)
}

func setXattrs(fd int, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
				return fmt.Errorf("xattr %s: %w", name, err)
			}
		}
	}
	return nil
}

// relabel asks for a full SELinux relabel on the next boot when the image
// enforces SELinux (or is permissive): the overlay's files have no labels.
func relabel(rootfd int) error {
	data, err := readIn(rootfd, "etc/selinux/config")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "SELINUX=")
		if ok && (v == "enforcing" || v == "permissive") {
			fd, err := unix.Openat(rootfd, ".autorelabel", unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return fmt.Errorf("writing /.autorelabel: %w", err)
			}
			unix.Close(fd)
			fmt.Printf("appliance: SELinux is %s: /.autorelabel written\n", v)
		}
	}
	return nil
}

func readIn(rootfd int, rel string) ([]byte, error) {
	fd, err := unix.Openat2(rootfd, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: how.Resolve})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// listTree prints every entry of the root, for tests.
func listTree(root *os.File) error {
	top := root.Name()
	return filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, top), "/")
		kind, extra := "other", ""
		switch {
		case fi.Mode().IsRegular():
			kind, extra = "file", fmt.Sprintf("size=%d links=%d", fi.Size(), st.Nlink)
		case fi.IsDir():
			kind = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			kind, extra = "symlink", "-> "+target
		}
		fmt.Printf("IBLIST %s %s %04o %d:%d %s\n", rel, kind, st.Mode&0o7777, st.Uid, st.Gid, extra)
		return nil
	})
}
