package archive

import (
	"bytes"
	"io"
	"math/rand"
	"testing"
)

// TestCompressorConcurrency: the asynchronous encoder writes the same bytes as
// a single goroutine, for input written in uneven chunks, and they decode back.
func TestCompressorConcurrency(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	data := make([]byte, 6<<20)
	for i := range data {
		// Compressible but not trivial: runs of a few symbols.
		data[i] = byte(rng.Intn(8)) + byte(i/4096%16)
	}
	enc := func(concurrency int) []byte {
		var buf bytes.Buffer
		w, err := newCompressor(&buf, concurrency)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); {
			n := 1 + rng.Intn(100000)
			if i+n > len(data) {
				n = len(data) - i
			}
			w.Write(data[i : i+n])
			i += n
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	one := enc(1)
	if two := enc(encoderConcurrency); !bytes.Equal(one, two) {
		t.Fatalf("concurrency %d gives other bytes than 1 (%d vs %d)", encoderConcurrency, len(two), len(one))
	}
	r, err := NewDecompressor(bytes.NewReader(one))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	back, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("round trip: %v", err)
	}
}
