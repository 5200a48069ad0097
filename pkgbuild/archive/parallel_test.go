package archive

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestParallelCompressor: the frames decode back to the input (with this
// package's decoder and with the zstd command), and the bytes do not depend on
// the number of CPUs or on how the input was split into writes.
func TestParallelCompressor(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	data := make([]byte, 3*ChunkSize+12345)
	for i := range data {
		data[i] = byte(rng.Intn(6)) + byte(i/8192%32)
	}
	compress := func(procs int) []byte {
		old := runtime.GOMAXPROCS(procs)
		defer runtime.GOMAXPROCS(old)
		var buf bytes.Buffer
		w, err := NewParallelCompressor(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); {
			n := 1 + rng.Intn(3*ChunkSize/2)
			if i+n > len(data) {
				n = len(data) - i
			}
			if _, err := w.Write(data[i : i+n]); err != nil {
				t.Fatal(err)
			}
			i += n
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	one := compress(1)
	if four := compress(4); !bytes.Equal(one, four) {
		t.Fatal("1 and 4 CPUs give different bytes")
	}
	r, err := NewDecompressor(bytes.NewReader(one))
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("round trip: %v (%d of %d bytes)", err, len(back), len(data))
	}
	zstdBin, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal("zstd not found: apt-get install zstd")
	}
	file := filepath.Join(t.TempDir(), "x.zst")
	os.WriteFile(file, one, 0o644)
	out, err := exec.Command(zstdBin, "-dc", file).Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("zstd -d: %v", err)
	}
	t.Run("empty", func(t *testing.T) {
		var buf bytes.Buffer
		w, _ := NewParallelCompressor(&buf)
		if err := w.Close(); err != nil || buf.Len() == 0 {
			t.Fatalf("%v, %d bytes", err, buf.Len())
		}
		r, err := NewDecompressor(&buf)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
			t.Fatalf("empty stream decodes to %q, %v", b, err)
		}
	})
	t.Run("write error", func(t *testing.T) {
		w, _ := NewParallelCompressor(failWriter{})
		w.Write(data)
		if err := w.Close(); !errors.Is(err, errFail) {
			t.Fatalf("got %v", err)
		}
	})
}

var errFail = errors.New("disk full")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFail }

// TestParallelCompressorAbort: after Abort what was buffered is not written,
// and writes fail.
func TestParallelCompressorAbort(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewParallelCompressor(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("x"), ChunkSize/2)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if buf.Len() != 0 {
		t.Fatalf("%d bytes written after Abort", buf.Len())
	}
	if _, err := w.Write([]byte("y")); err == nil {
		t.Fatal("write after Abort")
	}
	w.Abort() // twice is harmless
}
