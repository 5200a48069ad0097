package archive

import (
	"archive/tar"
	"bytes"
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
	fw    FrameWriter // nil: not framed
	mtime time.Time
	last  string
	types map[string]Type
}

// FramedFileSize is the size from which a framed Writer gives a file's content
// (with its tar padding) zstd frames of its own.
const FramedFileSize = 64 << 10

// FrameWriter is a zstd compressor that can end its current frame and pass
// precompressed frames through (ParallelCompressor).
type FrameWriter interface {
	io.Writer
	Cut()
	WriteFrames(raw []byte) error
}

// NewFramedWriter is NewWriter writing to a compressor: the content of every
// file of at least FramedFileSize bytes, padded to the tar block, is in frames
// of its own, and AddFrames can copy such content from another framed archive
// without decompressing it.
func NewFramedWriter(fw FrameWriter, mtime int64) *Writer {
	w := NewWriter(fw, mtime)
	w.fw = fw
	return w
}

// NewWriter returns a Writer stamping every entry with mtime (seconds since the
// epoch, not negative).
func NewWriter(w io.Writer, mtime int64) *Writer {
	return &Writer{tw: tar.NewWriter(w), mtime: time.Unix(mtime, 0).UTC(), types: map[string]Type{}}
}

// Add writes e; for a TypeFile exactly e.Size bytes are copied from r.
func (w *Writer) Add(e Entry, r io.Reader) error {
	hdr, err := w.header(e)
	if err != nil {
		return err
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing header of %q: %w", e.Name, err)
	}
	if e.Type == TypeFile {
		framed := w.fw != nil && e.Size >= FramedFileSize
		if framed {
			w.fw.Cut()
		}
		n, err := io.Copy(w.tw, io.LimitReader(r, e.Size))
		if err != nil {
			return fmt.Errorf("writing content of %q: %w", e.Name, err)
		}
		if n != e.Size {
			return fmt.Errorf("writing content of %q: got %d bytes, want %d", e.Name, n, e.Size)
		}
		if framed {
			if err := w.tw.Flush(); err != nil {
				return fmt.Errorf("writing content of %q: %w", e.Name, err)
			}
			w.fw.Cut()
		}
	}
	w.done(e)
	return nil
}

// AddFrames writes the header of the file e and then, through frames, whole
// zstd frames that decompress to exactly its content padded to the tar block
// (the caller has checked that). The Writer must be framed.
func (w *Writer) AddFrames(e Entry, frames func(FrameWriter) error) error {
	if w.fw == nil || e.Type != TypeFile || e.Size == 0 {
		return fmt.Errorf("internal error: AddFrames of %q on an unframed writer or not a non-empty file", e.Name)
	}
	hdr, err := w.header(e)
	if err != nil {
		return err
	}
	// The tar writer pads the previous file; the header is formatted as the
	// tar writer would and written directly, since the content bypasses it.
	if err := w.tw.Flush(); err != nil {
		return fmt.Errorf("writing header of %q: %w", e.Name, err)
	}
	var b bytes.Buffer
	if err := tar.NewWriter(&b).WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing header of %q: %w", e.Name, err)
	}
	if _, err := w.fw.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing header of %q: %w", e.Name, err)
	}
	w.fw.Cut()
	if err := frames(w.fw); err != nil {
		return fmt.Errorf("writing content of %q: %w", e.Name, err)
	}
	w.done(e)
	return nil
}

func (w *Writer) done(e Entry) {
	w.last = e.Name
	w.types[e.Name] = e.Type
}

// header checks e against what was written before and returns its header.
func (w *Writer) header(e Entry) (*tar.Header, error) {
	if err := CheckName(e.Name); err != nil {
		return nil, err
	}
	if w.last != "" && !Less(w.last, e.Name) {
		return nil, refuse(e.Name, "out of order or duplicate (after %q)", w.last)
	}
	if p := parent(e.Name); p != "" && w.types[p] != TypeDir {
		return nil, refuse(e.Name, "parent %q is not a directory written earlier", p)
	}
	if e.Mode&^fs.ModePerm != 0 {
		return nil, refuse(e.Name, "mode %v has bits beyond permissions", e.Mode)
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
			return nil, refuse(e.Name, "hardlink target %q is not a regular file written earlier", e.Linkname)
		}
		hdr.Typeflag = tar.TypeLink
		hdr.Linkname = e.Linkname
	default:
		return nil, refuse(e.Name, "unsupported entry type %v", e.Type)
	}
	return hdr, nil
}

// Close finishes the tar stream; it does not close the underlying writer.
func (w *Writer) Close() error {
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("closing tar stream: %w", err)
	}
	return nil
}
