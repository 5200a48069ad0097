package archive

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// ChunkSize is how much input each zstd frame of a ParallelCompressor holds.
const ChunkSize = 4 << 20

// ParallelCompressor compresses a stream on every CPU: the input is cut into
// ChunkSize pieces, each compressed on its own into one zstd frame (content
// size in the header, content checksum), and the frames are written in input
// order. Cut ends a frame early and WriteFrames passes precompressed frames
// through, so a Writer can give a big file's content frames of its own. A
// stream of concatenated frames is one valid zstd stream, and since the cuts
// depend only on the input and the calls, the same input gives the same bytes
// whatever the number of CPUs.
type ParallelCompressor struct {
	w       io.Writer
	enc     *zstd.Encoder
	buf     []byte
	pending chan chan result
	done    chan struct{}
	err     error // of the writer goroutine, read after done
	closed  bool
	aborted atomic.Bool // stop writing (Abort)
	frames  int
	sem     chan struct{}
}

type result struct {
	b   []byte
	err error
}

// NewParallelCompressor returns a ParallelCompressor writing to w. The caller
// must Close it.
func NewParallelCompressor(w io.Writer) (*ParallelCompressor, error) {
	return newParallelCompressor(w, zstd.SpeedFastest)
}

// NewParallelCompressorDefault is NewParallelCompressor at zstd's default
// level: slower, about 3 % smaller. Package tarballs use it, and the bundle
// copies their big files' frames as they are.
func NewParallelCompressorDefault(w io.Writer) (*ParallelCompressor, error) {
	return newParallelCompressor(w, zstd.SpeedDefault)
}

func newParallelCompressor(w io.Writer, level zstd.EncoderLevel) (*ParallelCompressor, error) {
	n := runtime.GOMAXPROCS(0)
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(n),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true), // an empty stream is still one frame
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd encoder: %w", err)
	}
	c := &ParallelCompressor{
		w:       w,
		enc:     enc,
		buf:     make([]byte, 0, ChunkSize),
		pending: make(chan chan result, n),
		done:    make(chan struct{}),
		sem:     make(chan struct{}, n),
	}
	go c.writeOut()
	return c, nil
}

// writeOut writes finished frames in order; after an error it drains.
func (c *ParallelCompressor) writeOut() {
	defer close(c.done)
	for ch := range c.pending {
		r := <-ch
		if c.err != nil || c.aborted.Load() {
			continue
		}
		if r.err != nil {
			c.err = r.err
			continue
		}
		if _, err := c.w.Write(r.b); err != nil {
			c.err = err
		}
	}
}

// Write buffers p, starting the compression of every full chunk.
func (c *ParallelCompressor) Write(p []byte) (int, error) {
	if c.closed {
		return 0, errors.New("zstd: write after close")
	}
	n := len(p)
	for len(p) > 0 {
		k := min(ChunkSize-len(c.buf), len(p))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == ChunkSize {
			c.flush()
		}
	}
	return n, nil
}

// Cut ends the current frame: what is written next starts a new one.
func (c *ParallelCompressor) Cut() {
	if !c.closed && len(c.buf) > 0 {
		c.flush()
	}
}

// WriteFrames cuts the current frame and then writes raw, which must be whole
// zstd frames, as it is. raw must not change until Close.
func (c *ParallelCompressor) WriteFrames(raw []byte) error {
	if c.closed {
		return errors.New("zstd: write after close")
	}
	c.Cut()
	c.frames++
	ch := make(chan result, 1)
	ch <- result{b: raw}
	c.pending <- ch
	return nil
}

func (c *ParallelCompressor) flush() {
	chunk := c.buf
	c.buf = make([]byte, 0, ChunkSize)
	c.frames++
	ch := make(chan result, 1)
	c.sem <- struct{}{}
	c.pending <- ch // blocks while n frames wait to be written
	go func() {
		defer func() { <-c.sem }()
		ch <- result{b: c.enc.EncodeAll(chunk, make([]byte, 0, len(chunk)/2))}
	}()
}

// Close compresses what is buffered, writes every frame and reports the
// first error.
func (c *ParallelCompressor) Close() error {
	if c.closed {
		return c.err
	}
	c.closed = true
	if len(c.buf) > 0 || c.frames == 0 {
		c.flush()
	}
	close(c.pending)
	<-c.done
	c.enc.Close()
	return c.err
}

// Abort ends the compressor without writing anything more: for a caller that
// failed and wants no partial stream written after its error.
func (c *ParallelCompressor) Abort() {
	if c.closed {
		return
	}
	c.closed = true
	c.aborted.Store(true)
	close(c.pending)
	<-c.done
	c.enc.Close()
}
