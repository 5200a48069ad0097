package overlay

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ApplyOptions tune how a stream lands in a tree.
type ApplyOptions struct {
	// Confine, when set, keeps every symlink and hardlink of the stream
	// inside the directory the stream is applied at (used for bundles, whose
	// links must stay under the prefix). Without it, links must stay inside
	// the tree root, with absolute symlink targets read relative to the root
	// (as they will be on the booted host).
	Confine bool
}

// EntryError names the tar entry that was refused and why.
type EntryError struct {
	Entry  string
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("tar entry %q: %s", e.Entry, e.Reason)
}

// Apply extracts the uncompressed tar stream r into the tree, below the tree
// path at ("" for the root, "opt/cluster" for a prefix). Later entries replace
// earlier ones, as layers do. Nothing is ever written outside the tree root:
// names with "..", absolute names, entries below a symlink, links that
// resolve outside, and unsupported entry types are refused with the entry's
// name. On error the tree may hold part of the stream; callers stage into a
// temporary directory and discard it.
func (t *Tree) Apply(r io.Reader, at string, opts ApplyOptions) error {
	at = CleanRel(at)
	if err := t.MkdirAll(at, 0o755, 0, 0); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar stream: %w", err)
		}
		if err := t.applyEntry(tr, hdr, at, opts); err != nil {
			return err
		}
	}
}

// entryPath validates a tar name and returns its tree path below at.
func entryPath(name, at string) (string, error) {
	if name == "" {
		return "", &EntryError{Entry: name, Reason: "empty name"}
	}
	if strings.HasPrefix(name, "/") {
		return "", &EntryError{Entry: name, Reason: "absolute path refused"}
	}
	if strings.ContainsRune(name, 0) {
		return "", &EntryError{Entry: name, Reason: "NUL byte in name"}
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", &EntryError{Entry: name, Reason: `".." component refused`}
		}
	}
	return CleanRel(path.Join(at, name)), nil
}

// within reports whether tree path p is base or below it.
func within(p, base string) bool {
	return base == "" || p == base || strings.HasPrefix(p, base+"/")
}

func (t *Tree) applyEntry(r io.Reader, hdr *tar.Header, at string, opts ApplyOptions) error {
	p, err := entryPath(hdr.Name, at)
	if err != nil {
		return err
	}
	if p == at && hdr.Typeflag != tar.TypeDir {
		return &EntryError{Entry: hdr.Name, Reason: "replaces the directory it is applied at"}
	}
	if err := t.checkParents(p, hdr.Name); err != nil {
		return err
	}
	e := &Entry{
		Path: p,
		Mode: uint32(hdr.Mode) & 0o7777,
		UID:  hdr.Uid,
		GID:  hdr.Gid,
	}
	if hdr.Uid < 0 || hdr.Gid < 0 {
		return &EntryError{Entry: hdr.Name, Reason: "negative uid/gid"}
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if e.Xattrs == nil {
				e.Xattrs = map[string][]byte{}
			}
			e.Xattrs[name] = []byte(v)
		}
	}
	confine := ""
	if opts.Confine {
		confine = at
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		e.Kind = KindDir
		return t.putDir(e)
	case tar.TypeReg: // archive/tar reports old-style TypeRegA entries as TypeReg
		e.Kind = KindFile
		e.Size = hdr.Size
		return t.putFile(e, r)
	case tar.TypeSymlink:
		e.Kind = KindSymlink
		e.Link = hdr.Linkname
		if err := checkSymlink(p, hdr.Linkname, confine); err != nil {
			return &EntryError{Entry: hdr.Name, Reason: err.Error()}
		}
		return t.putSymlink(e)
	case tar.TypeLink:
		target, err := entryPath(hdr.Linkname, at)
		if err != nil {
			return &EntryError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q refused", hdr.Linkname)}
		}
		if !within(target, confine) {
			return &EntryError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q is outside %q", hdr.Linkname, "/"+confine)}
		}
		te, ok := t.Entries[target]
		if !ok || te.Kind != KindFile {
			return &EntryError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q is not a regular file already in the tree", hdr.Linkname)}
		}
		return t.putHardlink(p, te)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		switch hdr.Typeflag {
		case tar.TypeChar:
			e.Kind = KindCharDev
		case tar.TypeBlock:
			e.Kind = KindBlockDev
		default:
			e.Kind = KindFifo
		}
		e.DevMajor, e.DevMinor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
		return t.putSpecial(e)
	default:
		return &EntryError{Entry: hdr.Name, Reason: fmt.Sprintf("unsupported entry type %q", string(hdr.Typeflag))}
	}
}

// checkSymlink refuses a symlink at tree path p whose target, resolved
// lexically from the symlink's directory (absolute targets from the tree
// root), climbs above the root or leaves confine.
func checkSymlink(p, target, confine string) error {
	if target == "" {
		return errors.New("empty symlink target")
	}
	resolved, ok := resolveLink(path.Dir(p), target)
	if !ok {
		return fmt.Errorf("symlink target %q points outside the root", target)
	}
	if !within(resolved, confine) {
		return fmt.Errorf("symlink target %q points outside %q", target, "/"+confine)
	}
	return nil
}

// resolveLink resolves target relative to tree directory dir without
// following other links; ok is false when ".." climbs above the root.
func resolveLink(dir, target string) (string, bool) {
	var stack []string
	if !strings.HasPrefix(target, "/") && dir != "." && dir != "" {
		stack = strings.Split(dir, "/")
	}
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			if len(stack) == 0 {
				return "", false
			}
			stack = stack[:len(stack)-1]
		default:
			stack = append(stack, part)
		}
	}
	return strings.Join(stack, "/"), true
}

// checkParents makes sure every parent of p is a directory in the tree,
// creating missing ones (root-owned, 0755) and refusing to go through
// anything else, so a hostile stream cannot write via a symlink it planted.
func (t *Tree) checkParents(p, name string) error {
	if p == "" {
		return nil
	}
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	cur := ""
	for _, part := range parts {
		cur = path.Join(cur, part)
		pe, ok := t.Entries[cur]
		if !ok {
			if err := t.MkdirAll(cur, 0o755, 0, 0); err != nil {
				return err
			}
			continue
		}
		if pe.Kind != KindDir {
			return &EntryError{Entry: name, Reason: fmt.Sprintf("parent %q is a %s, not a directory", "/"+cur, pe.Kind)}
		}
	}
	return nil
}

func (t *Tree) host(p string) string { return filepath.Join(t.Root, filepath.FromSlash(p)) }

// removeExisting clears whatever is staged at p, unless it is a directory
// and keepDir is set. Children of a replaced directory leave the tree too.
func (t *Tree) removeExisting(p string, keepDir bool) error {
	old, ok := t.Entries[p]
	if !ok {
		// Device nodes and fifos have no staged file; anything else is ours.
		if _, err := os.Lstat(t.host(p)); err == nil {
			return os.RemoveAll(t.host(p))
		}
		return nil
	}
	if old.Kind == KindDir && keepDir {
		return nil
	}
	if old.Kind == KindDir {
		prefix := p + "/"
		for k := range t.Entries {
			if strings.HasPrefix(k, prefix) {
				delete(t.Entries, k)
			}
		}
	}
	delete(t.Entries, p)
	if err := os.RemoveAll(t.host(p)); err != nil {
		return fmt.Errorf("replacing %q: %w", "/"+p, err)
	}
	return nil
}

func (t *Tree) putDir(e *Entry) error {
	if old, ok := t.Entries[e.Path]; ok && old.Kind == KindDir {
		e.Xattrs = mergeXattrs(old.Xattrs, e.Xattrs)
		t.Entries[e.Path] = e
		return nil
	}
	if err := t.removeExisting(e.Path, false); err != nil {
		return err
	}
	if err := t.hostParent(e.Path); err != nil {
		return err
	}
	if err := os.Mkdir(t.host(e.Path), 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("creating directory %q: %w", "/"+e.Path, err)
	}
	t.Entries[e.Path] = e
	return nil
}

func mergeXattrs(old, cur map[string][]byte) map[string][]byte {
	if cur != nil {
		return cur
	}
	return old
}

// stagedMode is the mode contents are staged with: readable and writable by
// the build user whatever the stream declared (the truth is in the Entry).
func stagedMode(mode uint32) os.FileMode {
	if mode&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

func (t *Tree) putFile(e *Entry, r io.Reader) error {
	if err := t.removeExisting(e.Path, false); err != nil {
		return err
	}
	if err := t.hostParent(e.Path); err != nil {
		return err
	}
	f, err := os.OpenFile(t.host(e.Path), os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, stagedMode(e.Mode))
	if err != nil {
		return fmt.Errorf("staging %q: %w", "/"+e.Path, err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("staging %q: %w", "/"+e.Path, err)
	}
	e.Size = n
	t.Entries[e.Path] = e
	return nil
}

func (t *Tree) putSymlink(e *Entry) error {
	if err := t.removeExisting(e.Path, false); err != nil {
		return err
	}
	if err := t.hostParent(e.Path); err != nil {
		return err
	}
	if err := os.Symlink(e.Link, t.host(e.Path)); err != nil {
		return fmt.Errorf("staging symlink %q: %w", "/"+e.Path, err)
	}
	t.Entries[e.Path] = e
	return nil
}

func (t *Tree) putHardlink(p string, target *Entry) error {
	if p == target.Path {
		return nil
	}
	if err := t.removeExisting(p, false); err != nil {
		return err
	}
	if err := t.hostParent(p); err != nil {
		return err
	}
	if err := os.Link(t.host(target.Path), t.host(p)); err != nil {
		if t.Sparse {
			return fmt.Errorf("staging hardlink %q to %q: the target must be written in this build, not come from the cached base layer: %w", "/"+p, "/"+target.Path, err)
		}
		return fmt.Errorf("staging hardlink %q: %w", "/"+p, err)
	}
	e := *target
	e.Path = p
	e.Kind = KindHardlink
	e.Link = target.Path
	t.Entries[p] = &e
	return nil
}

func (t *Tree) putSpecial(e *Entry) error {
	if err := t.removeExisting(e.Path, false); err != nil {
		return err
	}
	t.Entries[e.Path] = e
	return nil
}
