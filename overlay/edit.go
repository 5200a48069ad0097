package overlay

import (
	"fmt"
	"os"
	"path"
	"strings"
)

// MkdirAll creates directory p and any missing parents in the tree. Existing
// directories keep their metadata; a non-directory in the way is an error.
func (t *Tree) MkdirAll(p string, mode uint32, uid, gid int) error {
	p = CleanRel(p)
	if p == "" {
		return nil
	}
	cur := ""
	for _, part := range strings.Split(p, "/") {
		cur = path.Join(cur, part)
		if e, ok := t.Entries[cur]; ok {
			if e.Kind != KindDir {
				return fmt.Errorf("creating directory %q: %q is a %s", "/"+p, "/"+cur, e.Kind)
			}
			continue
		}
		if err := t.hostParent(cur); err != nil {
			return err
		}
		if err := os.Mkdir(t.host(cur), 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("creating directory %q: %w", "/"+cur, err)
		}
		t.Entries[cur] = &Entry{Path: cur, Kind: KindDir, Mode: mode, UID: uid, GID: gid}
	}
	return nil
}

// WriteFile puts a regular file with the given contents and metadata at p,
// replacing whatever was there; missing parents are created root-owned 0755.
func (t *Tree) WriteFile(p string, data []byte, mode uint32, uid, gid int) error {
	p = CleanRel(p)
	if err := t.checkParents(p, "/"+p); err != nil {
		return err
	}
	e := &Entry{Path: p, Kind: KindFile, Mode: mode & 0o7777, UID: uid, GID: gid}
	return t.putFile(e, strings.NewReader(string(data)))
}

// Symlink puts a symlink at p pointing to target (as written), replacing
// whatever was there.
func (t *Tree) Symlink(target, p string) error {
	p = CleanRel(p)
	if err := t.checkParents(p, "/"+p); err != nil {
		return err
	}
	if err := checkSymlink(p, target, ""); err != nil {
		return fmt.Errorf("symlink %q: %w", "/"+p, err)
	}
	return t.putSymlink(&Entry{Path: p, Kind: KindSymlink, Mode: 0o777, Link: target})
}

// Remove deletes p (and everything below it) from the tree; a missing path
// is not an error.
func (t *Tree) Remove(p string) error {
	p = CleanRel(p)
	if p == "" {
		return fmt.Errorf("refusing to remove the tree root")
	}
	if err := t.checkParents(p, "/"+p); err != nil {
		return err
	}
	return t.removeExisting(p, false)
}

// Resolve follows symlinks at p (and in its parents) inside the tree, as the
// booted host would, with absolute targets read from the tree root. It
// returns the tree path that is not a symlink.
func (t *Tree) Resolve(p string) (string, error) {
	p = CleanRel(p)
	for hops := 0; hops < 40; hops++ {
		cur, rest := "", strings.Split(p, "/")
		changed := false
		for i, part := range rest {
			if part == "" {
				continue
			}
			next := path.Join(cur, part)
			e, ok := t.Entries[next]
			if ok && e.Kind == KindSymlink {
				target, ok := resolveLink(cur, e.Link)
				if !ok {
					target = CleanRel(e.Link)
				}
				p = path.Join(append([]string{target}, rest[i+1:]...)...)
				changed = true
				break
			}
			cur = next
		}
		if !changed {
			return p, nil
		}
	}
	return "", fmt.Errorf("resolving %q: too many levels of symlinks", "/"+p)
}

// ReadFile returns the staged contents of regular file p, following
// symlinks inside the tree.
func (t *Tree) ReadFile(p string) ([]byte, error) {
	p, err := t.Resolve(p)
	if err != nil {
		return nil, err
	}
	e, ok := t.Entries[p]
	if !ok || (e.Kind != KindFile && e.Kind != KindHardlink) {
		return nil, fmt.Errorf("reading %q: not a regular file in the tree", "/"+p)
	}
	if t.Sparse {
		if _, err := os.Lstat(t.host(p)); err != nil {
			return nil, fmt.Errorf("reading %q: its contents are in the cached base layer, not staged: %w", "/"+p, err)
		}
	}
	return os.ReadFile(t.host(p))
}
