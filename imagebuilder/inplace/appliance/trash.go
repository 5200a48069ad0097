package main

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// trashName is a directory at the root of the image that holds what the
// overlay replaces or removes until every overlay entry exists; it is
// removed at the end. Nothing is freed while entries are created, so XFS's
// background inode inactivation cannot hand a just-freed inode to a new
// file at a moment that depends on timing: the same overlay gets the same
// inode numbers on every run (see imagebuilder/inplace/xfsnorm.go).
const trashName = ".imagebuilder-trash"

type trash struct {
	fd, n int
}

func openTrash(rootfd int) (*trash, error) {
	if err := unix.Mkdirat(rootfd, trashName, 0o700); err != nil {
		return nil, fmt.Errorf("creating /%s: %w (left by an interrupted run?)", trashName, err)
	}
	fd, err := unix.Openat(rootfd, trashName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /%s: %w", trashName, err)
	}
	return &trash{fd: fd}, nil
}

// put moves name (in the directory pfd) into the trash; a missing name is
// not an error, and a directory only moves when dirOK.
func (t *trash) put(pfd int, name string, dirOK bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR && !dirOK {
		return errors.New("would replace a directory of the image")
	}
	if err := unix.Renameat(pfd, name, t.fd, strconv.Itoa(t.n)); err != nil {
		return fmt.Errorf("moving %s aside: %w", name, err)
	}
	t.n++
	return nil
}

// remove moves rel (resolved inside the root; a directory with its
// contents) into the trash; a missing path is not an error.
func (t *trash) remove(rootfd int, rel string) error {
	return inParent(rootfd, rel, func(pfd int, name string) error { return t.put(pfd, name, true) })
}

// empty removes the trash and everything in it.
func (t *trash) empty(rootfd int) error {
	unix.Close(t.fd)
	if err := removeAllIn(rootfd, trashName); err != nil {
		return fmt.Errorf("removing /%s: %w", trashName, err)
	}
	fmt.Printf("appliance: %d replaced or removed entries freed\n", t.n)
	return nil
}
