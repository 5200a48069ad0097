package pkgbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"imagebuilder/pkgbuild/atomicfile"
)

// download fetches rawURL into final (a verified, read-only file named by its
// sha256), resumably: bytes arrive in partial/<sha256>, which survives an
// interrupted transfer; the next attempt asks an http(s) server only for the
// rest (Range), and starts over when the server does not do ranges. Only a
// complete file whose sha256 is want is renamed to final; a mismatch removes
// the partial file. A lock on the partial file keeps two builders (also two
// processes) from downloading the same file at once.
func (c *sourceCache) download(ctx context.Context, rawURL, want, final string) error {
	dir := filepath.Join(c.dir, "partial")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	part := filepath.Join(dir, want)
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("source cache: locking %s: %w", part, err)
	}
	if sum, err := fileDigest(final); err == nil && sum == want {
		return nil // another builder finished it while we waited
	}
	h := sha256.New()
	have, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	body, restart, err := c.openFrom(ctx, rawURL, have)
	if err != nil {
		if have == 0 {
			os.Remove(part) // nothing to resume
		}
		return err
	}
	defer body.Close()
	if restart {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("source cache: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("source cache: %w", err)
		}
		h.Reset()
		have = 0
	} else if have > 0 {
		c.log.Info("resuming download", "url", rawURL, "offset", have)
	}
	if _, err := io.Copy(io.MultiWriter(f, h), body); err != nil {
		f.Sync() // keep what arrived for the next attempt
		return fmt.Errorf("downloading %s (resumable, %s kept): %w", rawURL, part, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		os.Remove(part)
		return fmt.Errorf("%s: sha256 mismatch: got %s, want %s", rawURL, got, want)
	}
	if err := f.Chmod(0o444); err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	if err := os.Rename(part, final); err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(final))
}

// openFrom opens rawURL for reading from byte offset. restart is true when the
// returned body starts at byte 0 instead (no offset, a file URL, or a server
// that ignored the Range header).
func (c *sourceCache) openFrom(ctx context.Context, rawURL string, offset int64) (io.ReadCloser, bool, error) {
	if offset == 0 || !isHTTP(rawURL) {
		body, err := c.open(ctx, rawURL)
		return body, true, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, false, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if cr := resp.Header.Get("Content-Range"); !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(offset, 10)+"-") {
			resp.Body.Close()
			return nil, false, fmt.Errorf("fetching %s: asked for bytes from %d, got range %q", rawURL, offset, cr)
		}
		return resp.Body, false, nil
	case http.StatusOK:
		return resp.Body, true, nil
	case http.StatusRequestedRangeNotSatisfiable:
		// The partial file is as long as the file or longer: start over.
		resp.Body.Close()
		body, err := c.open(ctx, rawURL)
		return body, true, err
	}
	resp.Body.Close()
	return nil, false, fmt.Errorf("fetching %s: %s", rawURL, resp.Status)
}

func isHTTP(rawURL string) bool {
	return strings.HasPrefix(rawURL, "http://") || strings.HasPrefix(rawURL, "https://")
}
