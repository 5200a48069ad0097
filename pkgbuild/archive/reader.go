package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Policy says what a Reader accepts.
type Policy struct {
	// Lenient is for upstream source archives: it accepts "./" prefixes,
	// unsorted entries, implicit parent directories, setuid bits (dropped), PAX
	// global headers (skipped) and any symlink target (extraction never follows
	// one). Paths must still stay inside the root and never pass through a symlink.
	Lenient bool
	// Prefix is where absolute symlink targets may point (the install prefix).
	// Empty refuses every absolute target.
	Prefix string
	// Scope returns the directory that relative symlink targets and hardlink
	// targets of an entry must stay within; nil means the archive root.
	Scope func(name string) string
}

type seenEntry struct {
	typ      Type
	implicit bool
}

// Reader reads and validates a tar stream entry by entry. Every entry is checked
// before Next returns it, so a consumer never sees a refused one.
type Reader struct {
	tr     *tar.Reader
	policy Policy
	last   string
	seen   map[string]seenEntry
}

// NewReader reads the (uncompressed) tar stream r under policy p.
func NewReader(r io.Reader, p Policy) *Reader {
	return &Reader{tr: tar.NewReader(r), policy: p, seen: map[string]seenEntry{}}
}

func (r *Reader) scope(name string) string {
	if r.policy.Scope == nil {
		return ""
	}
	return r.policy.Scope(name)
}

// Next returns the next entry, io.EOF at the end, or an *EntryError for an entry
// the policy refuses.
func (r *Reader) Next() (*Entry, error) {
	for {
		hdr, err := r.tr.Next()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return nil, fmt.Errorf("reading tar header: %w", err)
		}
		e, skip, err := r.check(hdr)
		if err != nil {
			return nil, err
		}
		if skip {
			continue
		}
		return e, nil
	}
}

// Read reads the content of the current TypeFile entry.
func (r *Reader) Read(b []byte) (int, error) { return r.tr.Read(b) }

func (r *Reader) check(hdr *tar.Header) (e *Entry, skip bool, err error) {
	lenient := r.policy.Lenient
	raw := hdr.Name
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return nil, false, refuse(raw, "sparse files are not supported")
		}
	}
	e = &Entry{}
	switch hdr.Typeflag {
	case tar.TypeReg: // archive/tar reports old-style TypeRegA entries as TypeReg (or TypeDir)
		e.Type = TypeFile
		if strings.HasSuffix(raw, "/") {
			return nil, false, refuse(raw, "regular file name ends in a slash")
		}
	case tar.TypeDir:
		e.Type = TypeDir
	case tar.TypeSymlink:
		e.Type = TypeSymlink
	case tar.TypeLink:
		e.Type = TypeHardlink
	case tar.TypeXGlobalHeader:
		if lenient {
			return nil, true, nil
		}
		return nil, false, refuse(raw, "PAX global header not allowed")
	default:
		return nil, false, refuse(raw, "unsupported entry type %q", hdr.Typeflag)
	}
	name := raw
	if e.Type == TypeDir {
		name = strings.TrimSuffix(name, "/")
	}
	if lenient {
		for strings.HasPrefix(name, "./") {
			name = strings.TrimLeft(strings.TrimPrefix(name, "./"), "/")
		}
		if name == "." || name == "" {
			if e.Type == TypeDir {
				return nil, true, nil
			}
		}
	}
	if err := CheckName(name); err != nil {
		return nil, false, refuse(raw, "%s", err.(*EntryError).Reason)
	}
	e.Name = name

	mode := hdr.Mode
	if mode&0o7000 != 0 && !lenient {
		return nil, false, refuse(raw, "setuid, setgid or sticky bit in mode %o", mode&0o7777)
	}
	e.Mode = fs.FileMode(mode) & fs.ModePerm

	if !lenient && r.last != "" && !Less(r.last, name) {
		return nil, false, refuse(raw, "out of order or duplicate (after %q)", r.last)
	}
	if prev, ok := r.seen[name]; ok && !(prev.implicit && e.Type == TypeDir) {
		return nil, false, refuse(raw, "duplicate entry")
	}
	if err := r.checkParents(raw, name); err != nil {
		return nil, false, err
	}

	switch e.Type {
	case TypeFile:
		if hdr.Size < 0 {
			return nil, false, refuse(raw, "negative size")
		}
		e.Size = hdr.Size
	case TypeDir:
	case TypeSymlink:
		e.Linkname = hdr.Linkname
		if lenient {
			if e.Linkname == "" || strings.ContainsRune(e.Linkname, 0) {
				return nil, false, refuse(raw, "bad symlink target %q", e.Linkname)
			}
		} else if err := CheckSymlink(name, e.Linkname, r.scope(name), r.policy.Prefix); err != nil {
			return nil, false, refuse(raw, "%s", err.(*EntryError).Reason)
		}
	case TypeHardlink:
		target := hdr.Linkname
		if lenient {
			for strings.HasPrefix(target, "./") {
				target = strings.TrimLeft(strings.TrimPrefix(target, "./"), "/")
			}
		}
		if err := CheckName(target); err != nil {
			return nil, false, refuse(raw, "hardlink target %q: %s", hdr.Linkname, err.(*EntryError).Reason)
		}
		if prev, ok := r.seen[target]; !ok || prev.typ != TypeFile {
			return nil, false, refuse(raw, "hardlink target %q is not an earlier regular file", hdr.Linkname)
		}
		if r.scope(target) != r.scope(name) {
			return nil, false, refuse(raw, "hardlink target %q is outside %q", hdr.Linkname, r.scope(name))
		}
		e.Linkname = target
	}
	if !lenient && e.Type != TypeFile && hdr.Size != 0 {
		return nil, false, refuse(raw, "%v entry with size %d", e.Type, hdr.Size)
	}
	r.seen[name] = seenEntry{typ: e.Type}
	r.last = name
	return e, false, nil
}

// checkParents refuses an entry whose parent is not a directory: strict archives
// must list the parent first; lenient ones may leave it implicit, but no ancestor
// may be a symlink or file.
func (r *Reader) checkParents(raw, name string) error {
	p := parent(name)
	if p == "" {
		return nil
	}
	if !r.policy.Lenient {
		if prev, ok := r.seen[p]; !ok || prev.typ != TypeDir {
			if ok && prev.typ == TypeSymlink {
				return refuse(raw, "parent %q is a symlink", p)
			}
			return refuse(raw, "parent %q is not an earlier directory", p)
		}
		return nil
	}
	for a := p; a != ""; a = parent(a) {
		prev, ok := r.seen[a]
		if !ok {
			r.seen[a] = seenEntry{typ: TypeDir, implicit: true}
			continue
		}
		if prev.typ != TypeDir {
			return refuse(raw, "parent %q is a %v", a, prev.typ)
		}
	}
	return nil
}
