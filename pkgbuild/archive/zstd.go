package archive

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// encoderConcurrency lets the stream encoder compress a block while the caller
// fills the next one. Blocks still depend on the previous ones, so the output
// is the same bytes as with one goroutine (TestCompressorConcurrency checks).
const encoderConcurrency = 2

// NewCompressor returns a zstd writer with fixed settings: the default level,
// asynchronous block encoding and a content checksum, so the same input always
// gives the same bytes. The caller must Close it.
func NewCompressor(w io.Writer) (*zstd.Encoder, error) {
	return newCompressor(w, encoderConcurrency)
}

func newCompressor(w io.Writer, concurrency int) (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(false),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd encoder: %w", err)
	}
	return enc, nil
}

// NewDecompressor returns a single-threaded zstd reader. The caller must Close it.
func NewDecompressor(r io.Reader) (io.ReadCloser, error) {
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("creating zstd decoder: %w", err)
	}
	return dec.IOReadCloser(), nil
}
