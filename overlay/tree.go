package overlay

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Kind is the type of a tree entry.
type Kind uint8

const (
	KindFile Kind = iota + 1
	KindDir
	KindSymlink
	KindHardlink
	KindCharDev
	KindBlockDev
	KindFifo
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	case KindHardlink:
		return "hardlink"
	case KindCharDev:
		return "chardev"
	case KindBlockDev:
		return "blockdev"
	case KindFifo:
		return "fifo"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is what the streams declared about one path of the tree. Path is
// relative to the tree root, cleaned, without a leading slash ("etc/passwd");
// the root itself is "".
type Entry struct {
	Path string
	Kind Kind
	// Mode holds the permission bits plus setuid/setgid/sticky (07777).
	Mode     uint32
	UID, GID int
	// Link is the symlink target (as written) or, for a hardlink, the tree
	// path of the entry it links to.
	Link               string
	DevMajor, DevMinor uint32
	// Xattrs are extended attributes by full name ("security.capability").
	Xattrs map[string][]byte
	// Size is the size of a regular file's contents.
	Size int64
}

// Tree is a staging directory (Root) holding the contents of a root
// filesystem, and the metadata of every path in it. In the directory, files
// carry their contents, directories exist, symlinks and hardlinks are real;
// device nodes and fifos are absent (only their Entry exists). Owners and
// modes on disk are whatever the build user got; Entries is the truth.
type Tree struct {
	Root    string
	Entries map[string]*Entry
	// Sparse says Root holds only what was written since the tree was made
	// from the entries of a cached layer (NewSparseTree): the entries of
	// the base exist only as metadata, so host folders are made on demand
	// and the base's file contents cannot be read.
	Sparse bool
}

// NewSparseTree returns a tree whose entries are a copy of base (the same
// *Entry values, so a caller can tell what changed by pointer) and whose
// staging directory root, which must exist and be empty, receives only what
// is written from now on.
func NewSparseTree(root string, base map[string]*Entry) *Tree {
	entries := make(map[string]*Entry, len(base)+64)
	for k, v := range base {
		entries[k] = v
	}
	if _, ok := entries[""]; !ok {
		entries[""] = &Entry{Path: "", Kind: KindDir, Mode: 0o755}
	}
	return &Tree{Root: root, Entries: entries, Sparse: true}
}

// hostParent makes the host folder that will hold p in a sparse tree.
func (t *Tree) hostParent(p string) error {
	if !t.Sparse {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(t.host(p)), 0o755); err != nil {
		return fmt.Errorf("staging %q: %w", "/"+p, err)
	}
	return nil
}

// NewTree returns an empty tree staged in root, which must exist and be empty.
func NewTree(root string) *Tree {
	return &Tree{Root: root, Entries: map[string]*Entry{
		"": {Path: "", Kind: KindDir, Mode: 0o755},
	}}
}

// Sorted returns the entries in path order (parents before children).
func (t *Tree) Sorted() []*Entry {
	out := make([]*Entry, 0, len(t.Entries))
	for _, e := range t.Entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Lookup returns the entry for p (any form: "/etc/x", "etc/x").
func (t *Tree) Lookup(p string) (*Entry, bool) {
	e, ok := t.Entries[CleanRel(p)]
	return e, ok
}

// CleanRel turns an absolute or relative path into the tree's key form.
func CleanRel(p string) string {
	c := path.Clean("/" + p)
	return strings.TrimPrefix(c, "/")
}

// fileMode maps an entry's kind and mode bits to an fs.FileMode.
func (e *Entry) FileMode() fs.FileMode {
	m := fs.FileMode(e.Mode & 0o777)
	if e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch e.Kind {
	case KindDir:
		m |= fs.ModeDir
	case KindSymlink:
		m |= fs.ModeSymlink
	case KindCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case KindBlockDev:
		m |= fs.ModeDevice
	case KindFifo:
		m |= fs.ModeNamedPipe
	}
	return m
}
