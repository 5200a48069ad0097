package base

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"testing"
)

type bytesLayer []byte

func (b bytesLayer) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
func (b bytesLayer) String() string               { return "fuzz" }

// FuzzFlatten: any pair of layers flattens or fails cleanly, and every
// entry that comes out passes CheckEntry.
func FuzzFlatten(f *testing.F) {
	t := &testing.T{}
	f.Add(tarBytes(t, tarEntry{Name: "etc/", Type: tar.TypeDir, Mode: 0o755}, tarEntry{Name: "etc/a", Body: "a"}),
		tarBytes(t, tarEntry{Name: "etc/.wh.a"}, tarEntry{Name: ".wh..wh..opq"}, tarEntry{Name: "x", Type: tar.TypeSymlink, Link: "../y"}))
	f.Fuzz(func(t *testing.T, lower, upper []byte) {
		r := Flatten(context.Background(), []Layer{bytesLayer(lower), bytesLayer(upper)})
		defer r.Close()
		tr := tar.NewReader(io.LimitReader(r, 64<<20))
		for {
			hdr, err := tr.Next()
			if err != nil {
				return
			}
			if _, err := CheckEntry(hdr); err != nil {
				t.Fatalf("flatten let through %q: %v", hdr.Name, err)
			}
		}
	})
}
