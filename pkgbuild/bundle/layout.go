package bundle

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"

	"imagebuilder/pkgbuild/archive"
)

// layout is where a package tarball's zstd frames are, as the first pass saw
// them. The second pass copies the frames that hold exactly one big file's
// content into the bundle as they are, decodes only the frames holding other
// content it needs, and digests the whole file to prove that it read the same
// bytes as the first pass.
type layout struct {
	frames []archive.Frame
	// streamRaw and streamOff are where the tarball stops being whole frames
	// the reader decodes alone (-1: it does not).
	streamRaw, streamOff int64
	starts               map[int64]int // decompressed offset -> frame starting there
	ends                 map[int64]int // decompressed offset -> frame ending there
}

func newLayout(zr *archive.FramedReader) *layout {
	l := &layout{frames: zr.Frames(), streamRaw: -1, streamOff: -1}
	if raw, off, ok := zr.Streamed(); ok {
		l.streamRaw, l.streamOff = raw, off
	}
	l.starts = make(map[int64]int, len(l.frames))
	l.ends = make(map[int64]int, len(l.frames))
	for i, f := range l.frames {
		l.starts[f.Off] = i
		l.ends[f.Off+f.Len] = i
	}
	return l
}

// markCopies marks the files whose content, padded to the tar block, is
// exactly a run of frames.
func (l *layout) markCopies(items []item) {
	for i := range items {
		it := &items[i]
		if it.e.Type != archive.TypeFile || it.e.Size == 0 {
			continue
		}
		end := it.off + (it.e.Size+511)/512*512
		first, ok1 := l.starts[it.off]
		last, ok2 := l.ends[end]
		if ok1 && ok2 && first <= last {
			it.frames = [2]int{first, last + 1}
		}
	}
}

// copies reports whether it's content is copied as frames.
func (it *item) copies() bool { return it.frames[1] > it.frames[0] }

// cursor reads a package tarball a second time, front to back: from memory
// when the first pass kept it (data), else from the file.
type cursor struct {
	label string
	l     *layout
	data  []byte
	f     *os.File
	h     hash.Hash
	br    *bufio.Reader
	raw   int64 // compressed bytes consumed
	next  int   // first frame not consumed
	// cur is the decoded frame holding [curOff, curOff+len(cur)).
	cur    []byte
	curOff int64
	stream io.ReadCloser
	pos    int64 // decompressed offset of stream
}

func openCursor(src source) (*cursor, error) {
	if src.data != nil {
		return &cursor{label: src.label, l: src.layout, data: src.data}, nil
	}
	f, err := os.Open(src.file)
	if err != nil {
		return nil, fmt.Errorf("%s: opening package tarball: %w", src.label, err)
	}
	h := sha256.New()
	return &cursor{label: src.label, l: src.layout, f: f, h: h, br: bufio.NewReaderSize(io.TeeReader(f, h), 256<<10)}, nil
}

func (c *cursor) changed() error {
	return fmt.Errorf("%s: changed since it was first read", c.label)
}

// skipTo consumes compressed bytes up to raw.
func (c *cursor) skipTo(raw int64) error {
	if raw < c.raw {
		return fmt.Errorf("internal error: %s read backwards", c.label)
	}
	n, err := c.br.Discard(int(raw - c.raw))
	c.raw += int64(n)
	if err != nil {
		return c.changed()
	}
	return nil
}

// frame returns the compressed bytes of frame i.
func (c *cursor) frame(i int) ([]byte, error) {
	fr := c.l.frames[i]
	if c.data != nil {
		if i < c.next {
			return nil, fmt.Errorf("internal error: %s read backwards", c.label)
		}
		c.next = i + 1
		return c.data[fr.RawOff : fr.RawOff+fr.RawLen : fr.RawOff+fr.RawLen], nil
	}
	if err := c.skipTo(fr.RawOff); err != nil {
		return nil, err
	}
	b := make([]byte, fr.RawLen)
	n, err := io.ReadFull(c.br, b)
	c.raw += int64(n)
	if err != nil {
		return nil, c.changed()
	}
	c.next = i + 1
	return b, nil
}

// copyFrames writes the frames of it to fw as they are.
func (c *cursor) copyFrames(it item, fw archive.FrameWriter) error {
	for i := it.frames[0]; i < it.frames[1]; i++ {
		b, err := c.frame(i)
		if err != nil {
			return err
		}
		if err := fw.WriteFrames(b); err != nil {
			return err
		}
	}
	return nil
}

// content returns a reader of the size decompressed bytes at off.
func (c *cursor) content(off, size int64) io.Reader {
	return &contentReader{c: c, off: off, end: off + size}
}

type contentReader struct {
	c        *cursor
	off, end int64
}

func (r *contentReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	if int64(len(p)) > r.end-r.off {
		p = p[:r.end-r.off]
	}
	n, err := r.c.readAt(p, r.off)
	r.off += int64(n)
	return n, err
}

// readAt reads decompressed bytes at off, which never goes backwards.
func (c *cursor) readAt(p []byte, off int64) (int, error) {
	l := c.l
	if l.streamOff < 0 || off < l.streamOff {
		if off < c.curOff || off >= c.curOff+int64(len(c.cur)) {
			i := sort.Search(len(l.frames), func(i int) bool { return l.frames[i].Off+l.frames[i].Len > off })
			if i == len(l.frames) || l.frames[i].Off > off || i < c.next {
				return 0, c.changed()
			}
			b, err := c.frame(i)
			if err != nil {
				return 0, err
			}
			if c.cur, err = archive.DecodeFrame(b, l.frames[i]); err != nil {
				return 0, c.changed()
			}
			c.curOff = l.frames[i].Off
		}
		return copy(p, c.cur[off-c.curOff:]), nil
	}
	if c.stream == nil {
		var src io.Reader = c.br
		if c.data != nil {
			src = bytes.NewReader(c.data[l.streamRaw:])
		} else if err := c.skipTo(l.streamRaw); err != nil {
			return 0, err
		}
		zr, err := archive.NewDecompressor(src)
		if err != nil {
			return 0, err
		}
		c.stream, c.pos = zr, l.streamOff
	}
	if off < c.pos {
		return 0, fmt.Errorf("internal error: %s read backwards", c.label)
	}
	if n, err := io.CopyN(io.Discard, c.stream, off-c.pos); err != nil {
		c.pos += n
		return 0, c.changed()
	}
	c.pos = off
	n, err := c.stream.Read(p)
	c.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	if err != nil {
		return n, c.changed()
	}
	return n, nil
}

// finish digests the rest of the file and checks it is what the first pass saw.
func (c *cursor) finish(want string) error {
	if c.stream != nil {
		c.stream.Close()
		c.stream = nil
	}
	if c.data != nil {
		return nil // the bytes the first pass digested
	}
	if _, err := io.Copy(io.Discard, c.br); err != nil {
		return fmt.Errorf("%s: %w", c.label, err)
	}
	if got := hex.EncodeToString(c.h.Sum(nil)); got != want {
		return fmt.Errorf("%s: changed since it was first read (sha256 %s, was %s)", c.label, got, want)
	}
	return nil
}

func (c *cursor) Close() error {
	if c.stream != nil {
		c.stream.Close()
	}
	if c.f == nil {
		return nil
	}
	return c.f.Close()
}
