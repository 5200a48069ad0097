package archive

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Type is the kind of an archive entry. Only these four exist in package tarballs
// and bundles; devices, fifos and sockets are refused.
type Type uint8

// Entry types.
const (
	TypeDir Type = iota + 1
	TypeFile
	TypeSymlink
	TypeHardlink
)

func (t Type) String() string {
	switch t {
	case TypeDir:
		return "dir"
	case TypeFile:
		return "file"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hardlink"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Entry is one archive member in canonical form.
type Entry struct {
	// Name is relative, clean, without "./" or a trailing slash.
	Name string
	Type Type
	// Mode holds permission bits only (0o777).
	Mode fs.FileMode
	// Size is the content length of a TypeFile, else 0.
	Size int64
	// Linkname is a symlink's target, or for a hardlink the archive name of the
	// regular file it links to.
	Linkname string
}

// EntryError reports an entry that an archive may not contain.
type EntryError struct {
	Name   string
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("archive entry %q: %s", e.Name, e.Reason)
}

func refuse(name, format string, args ...any) error {
	return &EntryError{Name: name, Reason: fmt.Sprintf(format, args...)}
}

// Less is the order of entries in every archive this package writes: plain byte
// order of the canonical names. A directory sorts before everything inside it.
func Less(a, b string) bool { return a < b }

// CheckName reports whether name is canonical: relative, clean, non-empty, no ".."
// or "." components, no NUL.
func CheckName(name string) error {
	switch {
	case name == "" || name == ".":
		return refuse(name, "empty name")
	case strings.HasPrefix(name, "/"):
		return refuse(name, "absolute path")
	case strings.ContainsRune(name, 0):
		return refuse(name, "NUL in name")
	case name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/.."):
		return refuse(name, "path escapes the archive root")
	case path.Clean(name) != name:
		return refuse(name, "name is not clean")
	}
	return nil
}

// CheckSymlink reports whether a symlink named name with the given target stays
// confined. A relative target must be clean and resolve, from the link's directory,
// inside scope ("" is the archive root). An absolute target must be clean and lie
// under prefix; with prefix empty absolute targets are refused. Requiring clean
// targets keeps lexical resolution equal to the kernel's: ".." can only lead.
func CheckSymlink(name, target, scope, prefix string) error {
	switch {
	case target == "":
		return refuse(name, "empty symlink target")
	case strings.ContainsRune(target, 0):
		return refuse(name, "NUL in symlink target")
	case path.Clean(target) != target:
		return refuse(name, "symlink target %q is not clean", target)
	}
	if path.IsAbs(target) {
		if prefix == "" || prefix == "/" || (target != prefix && !strings.HasPrefix(target, prefix+"/")) {
			return refuse(name, "symlink target %q is absolute and outside %q", target, prefix)
		}
		return nil
	}
	resolved := path.Join(path.Dir(name), target)
	if !within(resolved, scope) {
		where := "the archive root"
		if scope != "" {
			where = fmt.Sprintf("%q", scope)
		}
		return refuse(name, "symlink target %q escapes %s", target, where)
	}
	return nil
}

// within reports whether the clean relative path p is scope or below it.
func within(p, scope string) bool {
	if p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p) {
		return false
	}
	if scope == "" {
		return true
	}
	return p == scope || strings.HasPrefix(p, scope+"/")
}

func parent(name string) string {
	d := path.Dir(name)
	if d == "." {
		return ""
	}
	return d
}
