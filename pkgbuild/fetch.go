package pkgbuild

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sync"

	"imagebuilder/pkgbuild/archive"
)

// sourceCache keeps fetched sources by content: sha256/<hex> holds a verified
// download, extracted/<hex> its unpacked tree.
type sourceCache struct {
	dir    string
	client *http.Client
	log    *slog.Logger
	// gitMu serialises fetches into the bare repositories.
	gitMu sync.Mutex
}

// fetch returns the path of a verified local copy of rawURL with the given sha256,
// downloading it (file://, http://, https://) when it is not cached.
func (c *sourceCache) fetch(ctx context.Context, rawURL, want string) (string, error) {
	dir := filepath.Join(c.dir, "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("source cache: %w", err)
	}
	final := filepath.Join(dir, want)
	switch sum, err := fileDigest(final); {
	case err == nil && sum == want:
		return final, nil
	case err == nil:
		c.log.Warn("cached source does not match its sha256; fetching again", "path", final, "sha256", sum)
		if err := os.Remove(final); err != nil {
			return "", fmt.Errorf("source cache: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("source cache: %w", err)
	}
	body, err := c.open(ctx, rawURL)
	if err != nil {
		return "", err
	}
	defer body.Close()
	var got string
	err = writeAtomic(final, 0o444, func(w io.Writer) error {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), body); err != nil {
			return fmt.Errorf("downloading %s: %w", rawURL, err)
		}
		got = hex.EncodeToString(h.Sum(nil))
		if got != want {
			return fmt.Errorf("%s: sha256 mismatch: got %s, want %s", rawURL, got, want)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	c.log.Info("fetched source", "url", rawURL, "sha256", want)
	return final, nil
}

func (c *sourceCache) open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("source url %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("source url %q: file URLs must not name a host", rawURL)
		}
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
		}
		return f, nil
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
		}
		resp, err := c.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("fetching %s: %s", rawURL, resp.Status)
		}
		return resp.Body, nil
	}
	return nil, fmt.Errorf("source url %q: unsupported scheme %q (want file, http or https)", rawURL, u.Scheme)
}

// extract returns a directory holding the unpacked archive with this sha256. A
// single top-level directory is stripped. Supported: tar, optionally compressed
// with gzip, bzip2 or zstd.
func (c *sourceCache) extract(ctx context.Context, rawURL, want string) (string, error) {
	dir := filepath.Join(c.dir, "extracted")
	final := filepath.Join(dir, want)
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return final, nil
	}
	file, err := c.fetch(ctx, rawURL, want)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("source cache: %w", err)
	}
	work, err := os.MkdirTemp(dir, ".tmp-"+want[:12]+"-")
	if err != nil {
		return "", fmt.Errorf("source cache: %w", err)
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", fmt.Errorf("source cache: %w", err)
	}
	if err := unpack(file, root); err != nil {
		return "", fmt.Errorf("extracting %s: %w", rawURL, err)
	}
	top := root
	if ents, err := os.ReadDir(root); err == nil && len(ents) == 1 && ents[0].IsDir() {
		top = filepath.Join(root, ents[0].Name())
	}
	if err := os.Rename(top, final); err != nil {
		if fi, serr := os.Stat(final); serr == nil && fi.IsDir() {
			return final, nil // another build extracted it meanwhile
		}
		return "", fmt.Errorf("source cache: %w", err)
	}
	return final, nil
}

func unpack(file, dest string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(6)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := archive.NewDecompressor(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte("BZh")):
		r = bzip2.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return errors.New("xz archives are not supported; use tar, tar.gz, tar.bz2 or tar.zst")
	case bytes.HasPrefix(magic, []byte("PK")):
		return errors.New("zip archives are not supported; use tar, tar.gz, tar.bz2 or tar.zst")
	}
	return archive.Extract(archive.NewReader(r, archive.Policy{Lenient: true}), dest)
}

// urlBase is the file name a url source gets inside $SRC/<name>/.
func urlBase(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "source"
	}
	b := path.Base(u.Path)
	if b == "." || b == "/" || b == ".." || b == "" {
		return "source"
	}
	return b
}
