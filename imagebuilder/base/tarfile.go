package base

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

func openTarFile(p string, o Options) (*Base, error) {
	sum, err := o.fileDigest(p)
	if err != nil {
		return nil, err
	}
	return &Base{Digest: "sha256:" + sum, open: func(context.Context) (io.ReadCloser, error) { return OpenTar(p) }}, nil
}

// OpenTar opens a tar file that may be zstd- or gzip-compressed (sniffed
// from its first bytes, not its name) and returns the uncompressed stream.
func OpenTar(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := Decompress(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &readCloser{Reader: r, close: func() error {
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		return f.Close()
	}}, nil
}

// Decompress returns r uncompressed: zstd and gzip are sniffed, anything
// else is passed through. The result is an io.Closer when it holds a
// decoder to release.
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, err
		}
		return &readCloser{Reader: zr, close: func() error { zr.Close(); return nil }}, nil
	case bytes.HasPrefix(head, gzipMagic):
		return gzip.NewReader(br)
	}
	return br, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }
