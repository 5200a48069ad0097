package archive

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// NewCompressor returns a zstd writer with fixed settings: the default level, one
// goroutine and a content checksum, so the same input always gives the same bytes.
// The caller must Close it.
func NewCompressor(w io.Writer) (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(1),
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
