package ocicache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/pkgbuild/ocicache/ocitest"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestPushPull round-trips a package through a real registry, then checks
// that a pull refuses what it should.
func TestPushPull(t *testing.T) {
	reg := ocitest.StartRegistry(t)
	ctx := context.Background()
	c, err := Open("oci://"+reg.Addr+"/imagebuilder/packages", nil)
	if err != nil {
		t.Fatal(err)
	}
	tarball := bytes.Repeat([]byte("package bytes "), 1000)
	file := filepath.Join(t.TempDir(), "p.tar.zst")
	os.WriteFile(file, tarball, 0o644)
	id := "demo--0123456789abcdef0123456789abcdef"
	meta := []byte(`{"id":"` + id + `","tarball_sha256":"` + sum(tarball) + `"}`)

	if _, err := c.Pull(ctx, id, &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pull before push: %v, want ErrNotFound", err)
	}
	if err := c.Push(ctx, id, meta, file, sum(tarball)); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	e, err := c.Pull(ctx, id, &got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), tarball) || !bytes.Equal(e.Metadata, meta) || e.TarballSHA256 != sum(tarball) {
		t.Errorf("pulled %d bytes, metadata %s", got.Len(), e.Metadata)
	}

	t.Run("metadata naming another id", func(t *testing.T) {
		other := "demo--ffffffffffffffffffffffffffffffff"
		if err := c.Push(ctx, other, meta, file, sum(tarball)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Pull(ctx, other, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "metadata names package") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("tarball digest other than the metadata's", func(t *testing.T) {
		other := "demo--eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
		bad := []byte(`{"id":"` + other + `","tarball_sha256":"` + sum([]byte("x")) + `"}`)
		if err := c.Push(ctx, other, bad, file, sum(tarball)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Pull(ctx, other, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "tarball digest") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("blob corrupted in the registry's storage", func(t *testing.T) {
		data := filepath.Join(reg.Storage, "docker/registry/v2/blobs/sha256", sum(tarball)[:2], sum(tarball), "data")
		if err := os.WriteFile(data, bytes.Repeat([]byte("evil bytes ...")[:14], 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := c.Pull(ctx, id, &bytes.Buffer{})
		if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want a digest error (ErrCorrupt)", err)
		}
		t.Log(err)
		// Uploading the good blob again does not replace the registry's
		// copy (the distribution registry keeps the first copy of a
		// digest); Repair reads the blob back and says which to delete.
		err = c.Repair(ctx, id, meta, file, sum(tarball))
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "sha256:"+sum(tarball)) || !strings.Contains(err.Error(), "blobs/sha256/"+sum(tarball)[:2]+"/"+sum(tarball)) {
			t.Fatalf("repair with the bad copy in place: %v", err)
		}
		t.Log(err)
		// Once the bad copy is gone, Repair restores the entry.
		if err := os.RemoveAll(filepath.Dir(data)); err != nil {
			t.Fatal(err)
		}
		if err := c.Repair(ctx, id, meta, file, sum(tarball)); err != nil {
			t.Fatalf("repair after the bad copy was removed: %v", err)
		}
		var got bytes.Buffer
		if _, err := c.Pull(ctx, id, &got); err != nil || !bytes.Equal(got.Bytes(), tarball) {
			t.Fatalf("pull after repair: %v (%d bytes)", err, got.Len())
		}
	})
	t.Run("bad urls", func(t *testing.T) {
		for _, u := range []string{"http://127.0.0.1/x", "oci://127.0.0.1:5000", "oci://127.0.0.1:5000/UPPER"} {
			if _, err := Open(u, nil); err == nil || !strings.Contains(err.Error(), u) {
				t.Errorf("Open(%q): %v", u, err)
			}
		}
	})
}
