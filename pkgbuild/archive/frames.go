package archive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxFrameContent is the largest frame a FramedReader decodes on its own: a
// frame declaring more (or no) content size switches the reader to streaming.
const MaxFrameContent = 2 * ChunkSize

// maxBlockSize is the zstd format's largest block.
const maxBlockSize = 128 << 10

var zstdMagic = [4]byte{0x28, 0xb5, 0x2f, 0xfd}

// Frame is one zstd frame of a stream: where its compressed bytes are, and
// which part of the decompressed stream they hold.
type Frame struct {
	RawOff, RawLen int64 // compressed bytes
	Off, Len       int64 // decompressed bytes
}

// frameHeader parses the header at the start of b (at least 18 bytes, or all
// that is left) and returns the header length and the declared content size,
// or ok=false when the frame is not one a FramedReader decodes whole.
func frameHeader(b []byte) (n int, size int64, ok bool) {
	if len(b) < 6 || [4]byte(b[:4]) != zstdMagic {
		return 0, 0, false
	}
	desc := b[4]
	fcsFlag, single, dictFlag := desc>>6, desc&0x20 != 0, desc&3
	if desc&0x08 != 0 || (fcsFlag == 0 && !single) {
		return 0, 0, false // reserved bit, or no content size
	}
	n = 5
	if !single {
		// A window beyond what the frame may hold could make other
		// decoders refuse the frame once it is copied into a bundle.
		wd := b[5]
		log := 10 + uint(wd>>3)
		if log > 23 || (1<<log)+(1<<log)/8*int64(wd&7) > MaxFrameContent {
			return 0, 0, false
		}
		n++
	}
	n += [4]int{0, 1, 2, 4}[dictFlag]
	fcsLen := [4]int{1, 2, 4, 8}[fcsFlag]
	if len(b) < n+fcsLen {
		return 0, 0, false
	}
	f := b[n : n+fcsLen]
	switch fcsLen {
	case 1:
		size = int64(f[0])
	case 2:
		size = int64(binary.LittleEndian.Uint16(f)) + 256
	case 4:
		size = int64(binary.LittleEndian.Uint32(f))
	case 8:
		u := binary.LittleEndian.Uint64(f)
		if u > MaxFrameContent {
			return 0, 0, false
		}
		size = int64(u)
	}
	if size > MaxFrameContent {
		return 0, 0, false
	}
	return n + fcsLen, size, true
}

// readFrame reads one whole frame from br when its header declares a content
// size of at most MaxFrameContent. Otherwise it consumes nothing and returns
// ok=false; at the end of the input it returns io.EOF.
func readFrame(br *bufio.Reader) (raw []byte, size int64, ok bool, err error) {
	head, err := br.Peek(18)
	if len(head) == 0 {
		if err == nil || err == io.EOF {
			return nil, 0, false, io.EOF
		}
		return nil, 0, false, err
	}
	n, size, ok := frameHeader(head)
	if !ok {
		return nil, 0, false, nil
	}
	checksum := head[4]&0x04 != 0
	raw = append(getBuf(n + int(size) + int(size)/64 + 64)[:0], head[:n]...)
	if _, err := br.Discard(n); err != nil {
		return nil, 0, false, err
	}
	for {
		var bh [3]byte
		if _, err := io.ReadFull(br, bh[:]); err != nil {
			return nil, 0, false, truncated(err)
		}
		raw = append(raw, bh[:]...)
		v := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
		last, typ, bsize := v&1 != 0, (v>>1)&3, int(v>>3)
		switch typ {
		case 1: // RLE: one byte
			bsize = 1
		case 3:
			return nil, 0, false, errors.New("zstd: reserved block type")
		}
		if bsize > maxBlockSize {
			return nil, 0, false, fmt.Errorf("zstd: block of %d bytes", bsize)
		}
		if int64(len(raw)+bsize) > 2*MaxFrameContent {
			return nil, 0, false, errors.New("zstd: frame larger than its content size allows")
		}
		start := len(raw)
		if cap(raw)-start < bsize {
			raw = append(raw, make([]byte, bsize)...)
		}
		raw = raw[:start+bsize]
		if _, err := io.ReadFull(br, raw[start:]); err != nil {
			return nil, 0, false, truncated(err)
		}
		if last {
			break
		}
	}
	if checksum {
		var sum [4]byte
		if _, err := io.ReadFull(br, sum[:]); err != nil {
			return nil, 0, false, truncated(err)
		}
		raw = append(raw, sum[:]...)
	}
	return raw, size, true, nil
}

// sliceFrame is readFrame for a stream in memory: it returns the length of
// the whole frame at the start of b.
func sliceFrame(b []byte) (n int, size int64, ok bool, err error) {
	head := b[:min(len(b), 18)]
	n, size, ok = frameHeader(head)
	if !ok {
		return 0, 0, false, nil
	}
	checksum := head[4]&0x04 != 0
	for {
		if len(b)-n < 3 {
			return 0, 0, false, io.ErrUnexpectedEOF
		}
		v := uint32(b[n]) | uint32(b[n+1])<<8 | uint32(b[n+2])<<16
		n += 3
		last, typ, bsize := v&1 != 0, (v>>1)&3, int(v>>3)
		switch typ {
		case 1:
			bsize = 1
		case 3:
			return 0, 0, false, errors.New("zstd: reserved block type")
		}
		if bsize > maxBlockSize {
			return 0, 0, false, fmt.Errorf("zstd: block of %d bytes", bsize)
		}
		if n+bsize > 2*MaxFrameContent {
			return 0, 0, false, errors.New("zstd: frame larger than its content size allows")
		}
		if len(b)-n < bsize {
			return 0, 0, false, io.ErrUnexpectedEOF
		}
		n += bsize
		if last {
			break
		}
	}
	if checksum {
		if len(b)-n < 4 {
			return 0, 0, false, io.ErrUnexpectedEOF
		}
		n += 4
	}
	return n, size, true, nil
}

func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var (
	frameDecoderOnce sync.Once
	frameDecoder     *zstd.Decoder
	frameDecoderErr  error
)

// decodeFrame decodes one whole frame of the declared size.
func decodeFrame(raw []byte, size int64) ([]byte, error) {
	frameDecoderOnce.Do(func() {
		frameDecoder, frameDecoderErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderMaxMemory(MaxFrameContent))
	})
	if frameDecoderErr != nil {
		return nil, fmt.Errorf("creating zstd decoder: %w", frameDecoderErr)
	}
	// Room beyond the content lets the decoder use its fast copy loops.
	out, err := frameDecoder.DecodeAll(raw, getBuf(2*int(size) + 64)[:0])
	if err != nil {
		return nil, err
	}
	if int64(len(out)) != size {
		return nil, fmt.Errorf("zstd: frame holds %d bytes, its header says %d", len(out), size)
	}
	return out, nil
}

var bufPool sync.Pool // of *[]byte

// getBuf returns a buffer of length n, reused when one is free.
func getBuf(n int) []byte {
	if p, ok := bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

// putBuf lets a later getBuf reuse b.
func putBuf(b []byte) {
	if cap(b) > 0 {
		bufPool.Put(&b)
	}
}

// DecodeFrame decodes the frame f whose compressed bytes are raw.
func DecodeFrame(raw []byte, f Frame) ([]byte, error) {
	if int64(len(raw)) != f.RawLen || f.Len > MaxFrameContent {
		return nil, fmt.Errorf("zstd: frame at %d is not %d bytes", f.RawOff, f.RawLen)
	}
	return decodeFrame(raw, f.Len)
}

// FramedReader decompresses a zstd stream and records its frames. Frames that
// declare a content size of at most MaxFrameContent are decoded ahead, on
// every CPU; from the first frame that does not, the rest of the stream is
// decoded as a stream and not recorded (Streamed tells where).
type FramedReader struct {
	br     *bufio.Reader
	data   []byte // the whole compressed stream, when in memory
	queue  chan chan decoded
	quit   chan struct{}
	done   chan struct{}
	frames []Frame
	buf    []byte
	whole  []byte // what buf is a tail of, for reuse
	off    int64  // decompressed bytes returned
	stream io.ReadCloser
	// streamRaw and streamOff are where streaming began (-1: it did not).
	streamRaw, streamOff int64
	err                  error
	closeOnce            sync.Once
}

type decoded struct {
	f      Frame
	data   []byte
	err    error
	stream bool // switch to streaming at f.RawOff, f.Off
}

// NewFramedReader returns a FramedReader reading the compressed stream r. The
// caller must Close it.
func NewFramedReader(r io.Reader) *FramedReader {
	return newFramedReader(bufio.NewReaderSize(r, 256<<10), nil)
}

// NewFramedReaderBytes returns a FramedReader of the compressed stream data,
// which must not change while it is used. The caller must Close it.
func NewFramedReaderBytes(data []byte) *FramedReader {
	return newFramedReader(nil, data)
}

func newFramedReader(br *bufio.Reader, data []byte) *FramedReader {
	// Frames decoded ahead, each in a buffer of twice its size: a bound
	// that does not grow with the CPUs, since several readers run at once.
	n := min(runtime.GOMAXPROCS(0), 4)
	fr := &FramedReader{
		br:        br,
		data:      data,
		queue:     make(chan chan decoded, n),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		streamRaw: -1,
		streamOff: -1,
	}
	go fr.produce(n)
	return fr
}

func (fr *FramedReader) produce(n int) {
	defer close(fr.done)
	defer close(fr.queue)
	sem := make(chan struct{}, n)
	var rawOff, off int64
	send := func(ch chan decoded) bool {
		select {
		case fr.queue <- ch:
			return true
		case <-fr.quit:
			return false
		}
	}
	rest := fr.data
	next := func() ([]byte, int64, bool, error) {
		if fr.data == nil {
			return readFrame(fr.br)
		}
		if len(rest) == 0 {
			return nil, 0, false, io.EOF
		}
		n, size, ok, err := sliceFrame(rest)
		if !ok || err != nil {
			return nil, 0, ok, err
		}
		raw := rest[:n:n]
		rest = rest[n:]
		return raw, size, true, nil
	}
	for {
		raw, size, ok, err := next()
		if err == io.EOF {
			return
		}
		ch := make(chan decoded, 1)
		if err != nil || !ok {
			ch <- decoded{f: Frame{RawOff: rawOff, Off: off}, err: err, stream: err == nil}
			send(ch)
			return
		}
		f := Frame{RawOff: rawOff, RawLen: int64(len(raw)), Off: off, Len: size}
		rawOff += f.RawLen
		off += f.Len
		if !send(ch) {
			return
		}
		select {
		case sem <- struct{}{}:
		case <-fr.quit:
			return
		}
		go func() {
			data, err := decodeFrame(raw, size)
			if fr.data == nil {
				putBuf(raw)
			}
			<-sem
			ch <- decoded{f: f, data: data, err: err}
		}()
	}
}

// Read returns decompressed bytes.
func (fr *FramedReader) Read(p []byte) (int, error) {
	for len(fr.buf) == 0 {
		if fr.whole != nil {
			putBuf(fr.whole)
			fr.whole = nil
		}
		if fr.err != nil {
			return 0, fr.err
		}
		if fr.stream != nil {
			n, err := fr.stream.Read(p)
			fr.off += int64(n)
			if err != nil {
				fr.err = err
			}
			return n, err
		}
		ch, ok := <-fr.queue
		if !ok {
			fr.err = io.EOF
			continue
		}
		d := <-ch
		switch {
		case d.err != nil:
			fr.err = d.err
		case d.stream:
			<-fr.done // the producer no longer reads br
			var src io.Reader = fr.br
			if fr.data != nil {
				src = bytes.NewReader(fr.data[d.f.RawOff:])
			}
			zr, err := NewDecompressor(src)
			if err != nil {
				fr.err = err
				continue
			}
			fr.stream, fr.streamRaw, fr.streamOff = zr, d.f.RawOff, d.f.Off
		default:
			fr.frames = append(fr.frames, d.f)
			fr.buf, fr.whole = d.data, d.data
		}
	}
	n := copy(p, fr.buf)
	fr.buf = fr.buf[n:]
	fr.off += int64(n)
	return n, nil
}

// Offset is the number of decompressed bytes Read has returned.
func (fr *FramedReader) Offset() int64 { return fr.off }

// Frames returns the frames decoded whole so far, in stream order.
func (fr *FramedReader) Frames() []Frame { return fr.frames }

// Streamed returns the compressed and decompressed offsets from which the
// stream was decoded as a stream, or ok=false when every frame was whole.
func (fr *FramedReader) Streamed() (rawOff, off int64, ok bool) {
	return fr.streamRaw, fr.streamOff, fr.streamRaw >= 0
}

// Close stops decoding ahead and waits until nothing reads the underlying
// reader any more; it does not close it.
func (fr *FramedReader) Close() error {
	fr.closeOnce.Do(func() {
		close(fr.quit)
		<-fr.done
		if fr.stream != nil {
			fr.stream.Close()
		}
	})
	return nil
}
