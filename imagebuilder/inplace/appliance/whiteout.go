package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// whiteoutPrefix marks an overlay entry that removes a path of the root
// (the OCI layer convention): "etc/.wh.hostname" removes /etc/hostname, a
// directory with everything below it. The build machine emits them for
// what the distro fixups removed (host keys, logs, caches, leftovers).
const whiteoutPrefix = ".wh."

// whiteout returns the path a whiteout entry removes, or "".
func whiteout(name string) (string, error) {
	base := path.Base(name)
	victim, ok := strings.CutPrefix(base, whiteoutPrefix)
	if !ok {
		return "", nil
	}
	if victim == "" || victim == "." || victim == ".." || strings.HasPrefix(victim, whiteoutPrefix) {
		return "", fmt.Errorf("whiteout %q names nothing removable", name)
	}
	return path.Join(path.Dir(name), victim), nil
}

// removeAllIn removes rel (a directory with its contents) inside the root,
// every path resolved in the root; a missing path is not an error.
func removeAllIn(rootfd int, rel string) error {
	return inParent(rootfd, rel, func(pfd int, name string) error { return removeAt(pfd, name, 0) })
}

// inParent opens rel's parent directory, resolved inside the root, and
// runs fn on it and rel's last element; a missing parent is not an error
// (there is nothing to act on).
func inParent(rootfd int, rel string, fn func(pfd int, name string) error) error {
	pfd, err := unix.Openat2(rootfd, path.Dir(rel), &how)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return fn(pfd, path.Base(rel))
}

func removeAt(pfd int, name string, depth int) error {
	if depth > 256 {
		return errors.New("directories nested too deep")
	}
	err := unix.Unlinkat(pfd, name, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case !errors.Is(err, unix.EISDIR):
		return fmt.Errorf("removing %s: %w", name, err)
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return fmt.Errorf("reading %s: %w", name, err)
	}
	for _, n := range names {
		if err := removeAt(fd, n, depth+1); err != nil {
			d.Close()
			return fmt.Errorf("%s/%w", name, err)
		}
	}
	d.Close()
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing directory %s: %w", name, err)
	}
	return nil
}
