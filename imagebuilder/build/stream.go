package build

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// openTar opens a tar file that may be zstd- or gzip-compressed (sniffed from
// its first bytes, not its name) and returns the uncompressed stream.
func openTar(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &multiCloser{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
	case bytes.HasPrefix(head, gzipMagic):
		gr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &multiCloser{Reader: gr, close: func() error { gr.Close(); return f.Close() }}, nil
	}
	return &multiCloser{Reader: br, close: f.Close}, nil
}

type multiCloser struct {
	io.Reader
	close func() error
}

func (m *multiCloser) Close() error { return m.close() }
