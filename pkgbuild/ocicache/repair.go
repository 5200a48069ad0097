package ocicache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Repair pushes package id again after a pull found one of its blobs
// corrupted (ErrCorrupt): both blobs are uploaded even though the registry
// says it has them, the manifest is tagged again, and the tarball is read
// back. If the registry still serves other bytes, the error (wrapping
// ErrCorrupt) names the blob to delete from its storage.
func (c *Cache) Repair(ctx context.Context, id string, metadata []byte, tarball, tarballSHA256 string) error {
	if _, err := c.tag(id); err != nil {
		return err
	}
	metaHash, _, err := v1.SHA256(bytes.NewReader(metadata))
	if err != nil {
		return err
	}
	if err := c.upload(ctx, metaHash, int64(len(metadata)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(metadata)), nil }); err != nil {
		return fmt.Errorf("repairing %s: metadata blob: %w", id, err)
	}
	tarHash, err := v1.NewHash("sha256:" + tarballSHA256)
	if err != nil {
		return fmt.Errorf("repairing %s: %w", id, err)
	}
	fi, err := os.Stat(tarball)
	if err != nil {
		return fmt.Errorf("repairing %s: %w", id, err)
	}
	if err := c.upload(ctx, tarHash, fi.Size(), func() (io.ReadCloser, error) { return os.Open(tarball) }); err != nil {
		return fmt.Errorf("repairing %s: tarball blob: %w", id, err)
	}
	// The manifest (which the blobs' upload left alone) is pushed as usual.
	if err := c.Push(ctx, id, metadata, tarball, tarballSHA256); err != nil {
		return fmt.Errorf("repairing %s: %w", id, err)
	}
	for _, d := range []v1.Descriptor{{Digest: metaHash, Size: int64(len(metadata))}, {Digest: tarHash, Size: fi.Size()}} {
		err := c.blob(ctx, d, io.Discard)
		if errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("repairing %s: %s still serves other bytes for blob %s after it was uploaded again "+
				"(the registry keeps the first copy of a digest): delete that blob from the registry's storage "+
				"(distribution registry: docker/registry/v2/blobs/sha256/%s/%s) and the next push restores it: %w",
				id, c.url, d.Digest, d.Digest.Hex[:2], d.Digest.Hex, ErrCorrupt)
		}
		if err != nil {
			return fmt.Errorf("repairing %s: reading back blob %s: %w", id, d.Digest, err)
		}
	}
	return nil
}

// upload sends a blob with the registry API's monolithic upload (POST, then
// PUT with the digest), whether or not the registry says it has it already.
func (c *Cache) upload(ctx context.Context, h v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	client, err := c.client(ctx, transport.PushScope)
	if err != nil {
		return err
	}
	start := c.endpoint("blobs/uploads/")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, start.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		return err
	}
	loc, err := start.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("upload of %s: no usable Location in the registry's answer (%q)", h, resp.Header.Get("Location"))
	}
	q := loc.Query()
	q.Set("digest", h.String())
	loc.RawQuery = q.Encode()
	body, err := open()
	if err != nil {
		return err
	}
	defer body.Close()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusCreated)
}
