package archive

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// Writer writes a deterministic tar stream: entries must arrive in Less order,
// every parent directory before its children; headers carry uid/gid 0, empty
// user and group names, the fixed mtime and no atime/ctime (USTAR, or PAX when a
// name needs it).
type Writer struct {
	tw    *tar.Writer
	mtime time.Time
	last  string
	types map[string]Type
}

// NewWriter returns a Writer stamping every entry with mtime (seconds since the
// epoch, not negative).
func NewWriter(w io.Writer, mtime int64) *Writer {
	return &Writer{tw: tar.NewWriter(w), mtime: time.Unix(mtime, 0).UTC(), types: map[string]Type{}}
}

// Add writes e; for a TypeFile exactly e.Size bytes are copied from r.
func (w *Writer) Add(e Entry, r io.Reader) error {
	if err := CheckName(e.Name); err != nil {
		return err
	}
	if w.last != "" && !Less(w.last, e.Name) {
		return refuse(e.Name, "out of order or duplicate (after %q)", w.last)
	}
	if p := parent(e.Name); p != "" && w.types[p] != TypeDir {
		return refuse(e.Name, "parent %q is not a directory written earlier", p)
	}
	if e.Mode&^fs.ModePerm != 0 {
		return refuse(e.Name, "mode %v has bits beyond permissions", e.Mode)
	}
	hdr := &tar.Header{
		Name:    e.Name,
		Mode:    int64(e.Mode),
		ModTime: w.mtime,
	}
	switch e.Type {
	case TypeDir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case TypeFile:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = e.Size
	case TypeSymlink:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = e.Linkname
	case TypeHardlink:
		if w.types[e.Linkname] != TypeFile {
			return refuse(e.Name, "hardlink target %q is not a regular file written earlier", e.Linkname)
		}
		hdr.Typeflag = tar.TypeLink
		hdr.Linkname = e.Linkname
	default:
		return refuse(e.Name, "unsupported entry type %v", e.Type)
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing header of %q: %w", e.Name, err)
	}
	if e.Type == TypeFile {
		n, err := io.Copy(w.tw, io.LimitReader(r, e.Size))
		if err != nil {
			return fmt.Errorf("writing content of %q: %w", e.Name, err)
		}
		if n != e.Size {
			return fmt.Errorf("writing content of %q: got %d bytes, want %d", e.Name, n, e.Size)
		}
	}
	w.last = e.Name
	w.types[e.Name] = e.Type
	return nil
}

// Close finishes the tar stream; it does not close the underlying writer.
func (w *Writer) Close() error {
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("closing tar stream: %w", err)
	}
	return nil
}
