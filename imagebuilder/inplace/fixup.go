package inplace

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"imagebuilder/overlay"
)

// The build machine cannot mount the vendor's root, yet the in-place path
// must apply the same distro fixups as the rebuild path. So the appliance
// first writes the root's skeleton (every entry with its owner and mode,
// and the contents of /etc, /usr/lib/os-release and the dpkg status:
// see the appliance's
// skeleton.go); ReadSkeleton stages it as an overlay.Tree; the build runs
// the distro profile's Fixup and installs the bundle on that tree exactly
// as on a rebuilt one; WriteChanges turns the difference into the overlay
// the appliance applies in the second run (whiteouts for what was removed).

// omittedKey is the PAX record of a skeleton file whose contents were
// left out (its value is the real size).
const omittedKey = "IMAGEBUILDER.omitted"

// Skeleton is a vendor root staged from the appliance's skeleton tar.
type Skeleton struct {
	Tree *overlay.Tree
	// Omitted are the files whose contents the skeleton does not carry.
	Omitted map[string]bool
	before  map[string]snap
}

type snap struct {
	e   overlay.Entry
	sum [32]byte
}

// ReadSkeleton stages the skeleton tar at p in dir (which must exist and
// be empty) and records its state, against which WriteChanges compares.
func ReadSkeleton(p, dir string) (*Skeleton, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("skeleton: %w", err)
	}
	defer f.Close()
	s := &Skeleton{Tree: overlay.NewTree(dir), Omitted: map[string]bool{}}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the skeleton: %w", err)
		}
		if _, ok := hdr.PAXRecords[omittedKey]; ok {
			s.Omitted[overlay.CleanRel(hdr.Name)] = true
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if err := s.Tree.Apply(f, "", overlay.ApplyOptions{}); err != nil {
		return nil, fmt.Errorf("staging the vendor root's skeleton: %w", err)
	}
	if s.before, err = state(s.Tree); err != nil {
		return nil, err
	}
	return s, nil
}

func state(t *overlay.Tree) (map[string]snap, error) {
	out := make(map[string]snap, len(t.Entries))
	for p, e := range t.Entries {
		s := snap{e: *e}
		if e.Kind == overlay.KindFile {
			data, err := os.ReadFile(filepath.Join(t.Root, filepath.FromSlash(p)))
			if err != nil {
				return nil, fmt.Errorf("reading staged /%s: %w", p, err)
			}
			s.sum = sha256.Sum256(data)
		}
		out[p] = s
	}
	return out, nil
}

func sameEntry(a, b overlay.Entry) bool {
	if a.Kind != b.Kind || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Link != b.Link ||
		a.DevMajor != b.DevMajor || a.DevMinor != b.DevMinor || len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	for k, v := range a.Xattrs {
		if !bytes.Equal(v, b.Xattrs[k]) {
			return false
		}
	}
	return true
}

// Changes counts what WriteChanges wrote.
type Changes struct {
	Added, Changed, Removed int
}

// WriteChanges writes an overlay tar of what the tree gained, changed and
// lost since ReadSkeleton: whiteouts (".wh.<name>") for removed paths
// first, then new and changed entries in path order, hardlinks last.
// Headers are root-relative with mtime epoch, so the same changes give the
// same bytes. A change to a file whose contents the skeleton omitted is
// refused: writing it would lose the vendor's contents.
func (s *Skeleton) WriteChanges(w io.Writer, epoch int64) (Changes, error) {
	var c Changes
	after, err := state(s.Tree)
	if err != nil {
		return c, err
	}
	removed := map[string]bool{}
	var whiteouts, puts, links []string
	for p, b := range s.before {
		a, ok := after[p]
		switch {
		case p == "":
		case !ok:
			removed[p] = true
		case b.e.Kind == overlay.KindDir && a.e.Kind != overlay.KindDir:
			whiteouts = append(whiteouts, p) // a directory replaced by a non-directory
		}
	}
	for p := range removed {
		if !removed[path.Dir(p)] {
			whiteouts = append(whiteouts, p)
		}
	}
	c.Removed = len(removed)
	for p, a := range after {
		if p == "" {
			continue
		}
		b, existed := s.before[p]
		if existed && sameEntry(b.e, a.e) && b.sum == a.sum {
			continue
		}
		if existed && s.Omitted[p] && a.e.Kind == overlay.KindFile {
			return c, fmt.Errorf("a fixup changes /%s, whose contents the appliance did not read (only /etc, /usr/lib/os-release and the dpkg status are read)", p)
		}
		if existed {
			c.Changed++
		} else {
			c.Added++
		}
		if a.e.Kind == overlay.KindHardlink {
			links = append(links, p)
		} else {
			puts = append(puts, p)
		}
	}
	sort.Strings(whiteouts)
	sort.Strings(puts)
	sort.Strings(links)
	tw := tar.NewWriter(w)
	mtime := time.Unix(epoch, 0)
	for _, p := range whiteouts {
		name := path.Join(path.Dir(p), ".wh."+path.Base(p))
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return c, err
		}
	}
	for _, p := range append(puts, links...) {
		if err := s.writeEntry(tw, s.Tree.Entries[p], mtime); err != nil {
			return c, fmt.Errorf("overlay entry /%s: %w", p, err)
		}
	}
	return c, tw.Close()
}

func (s *Skeleton) writeEntry(tw *tar.Writer, e *overlay.Entry, mtime time.Time) error {
	hdr := &tar.Header{Name: e.Path, Mode: int64(e.Mode & 0o7777), Uid: e.UID, Gid: e.GID, ModTime: mtime, Format: tar.FormatPAX}
	if len(e.Xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range e.Xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
		}
	}
	var data []byte
	switch e.Kind {
	case overlay.KindDir:
		hdr.Typeflag, hdr.Name = tar.TypeDir, e.Path+"/"
	case overlay.KindFile:
		var err error
		if data, err = os.ReadFile(filepath.Join(s.Tree.Root, filepath.FromSlash(e.Path))); err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
	case overlay.KindSymlink:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Link
	case overlay.KindHardlink:
		hdr.Typeflag, hdr.Linkname = tar.TypeLink, e.Link
	case overlay.KindCharDev, overlay.KindBlockDev:
		hdr.Typeflag = tar.TypeChar
		if e.Kind == overlay.KindBlockDev {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(e.DevMajor), int64(e.DevMinor)
	case overlay.KindFifo:
		hdr.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("unsupported kind %v", e.Kind)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}
