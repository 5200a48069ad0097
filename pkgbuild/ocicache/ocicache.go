// Package ocicache shares built packages through any OCI registry: each
// package is one OCI artifact, tagged with its package id, in one repository.
//
// The artifact is an OCI image manifest (application/vnd.oci.image.manifest.v1+json):
//
//	artifactType  application/vnd.imagebuilder.package.v1
//	config        application/vnd.imagebuilder.package.metadata.v1+json
//	              the package's store metadata (<id>.json) byte for byte
//	layers[0]     application/vnd.imagebuilder.package.v1.tar+zstd
//	              the package tarball (<id>.tar.zst); its digest is the
//	              metadata's tarball_sha256
//	annotations   org.opencontainers.image.title = <id>,
//	              dev.imagebuilder.package.name = <name>
//
// A pull checks everything it is given: the manifest's media and artifact
// types, the config and tarball digests (as they stream), the metadata's id,
// and that the tarball digest is the one the metadata names. Anything else is
// an error, which the builder treats as a miss (it builds instead). A blob
// whose bytes do not match its digest (corrupted in the registry) gives
// ErrCorrupt; after building, the builder calls Repair, which uploads the
// good blobs again even though the registry says it has them, and reads the
// tarball back to check. Registries that keep the first copy of a digest
// (the CNCF distribution registry does, even after a blob DELETE) still
// serve the bad bytes: Repair then says so, naming the blob to remove from
// the registry's storage; once it is gone, the next push restores the entry.
package ocicache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of a package artifact.
const (
	ArtifactType      = "application/vnd.imagebuilder.package.v1"
	MetadataMediaType = "application/vnd.imagebuilder.package.metadata.v1+json"
	TarballMediaType  = "application/vnd.imagebuilder.package.v1.tar+zstd"
	// NameAnnotation carries the package name.
	NameAnnotation = "dev.imagebuilder.package.name"
)

// maxMetadata bounds the metadata blob a pull accepts.
const maxMetadata = 1 << 20

// ErrNotFound marks a package the registry does not have.
var ErrNotFound = errors.New("not in the remote cache")

// ErrCorrupt marks a blob whose bytes do not match its digest.
var ErrCorrupt = errors.New("corrupted in the remote cache")

// Cache is one repository of an OCI registry.
type Cache struct {
	repo      name.Repository
	opts      []remote.Option
	transport http.RoundTripper
	url       string
}

// tagRE is what an OCI tag may be; package ids are <name>--<32 hex>.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// Open parses rawURL, oci://HOST[:PORT]/REPOSITORY. Loopback and private
// registries are spoken to over plain HTTP (as go-containerregistry does),
// others over HTTPS; credentials come from the Docker config (~/.docker/config.json).
func Open(rawURL string, client *http.Client) (*Cache, error) {
	rest, ok := strings.CutPrefix(rawURL, "oci://")
	if !ok {
		return nil, fmt.Errorf("remote cache %q: want oci://HOST[:PORT]/REPOSITORY", rawURL)
	}
	if !strings.Contains(rest, "/") {
		return nil, fmt.Errorf("remote cache %q: no repository after the host (want oci://HOST[:PORT]/REPOSITORY)", rawURL)
	}
	repo, err := name.NewRepository(rest, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("remote cache %q: %w", rawURL, err)
	}
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	rt := remote.DefaultTransport
	if client != nil && client.Transport != nil {
		opts = append(opts, remote.WithTransport(client.Transport))
		rt = client.Transport
	}
	return &Cache{repo: repo, opts: opts, transport: rt, url: rawURL}, nil
}

// String is the cache's URL.
func (c *Cache) String() string { return c.url }

func (c *Cache) options(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, c.opts...)
}

func (c *Cache) tag(id string) (name.Tag, error) {
	if !tagRE.MatchString(id) {
		return name.Tag{}, fmt.Errorf("package id %q cannot be an OCI tag", id)
	}
	return c.repo.Tag(id), nil
}

// Entry is a package found in the cache.
type Entry struct {
	// Metadata is the package's store metadata, as pushed.
	Metadata []byte
	// TarballSHA256 is the hex digest of the tarball.
	TarballSHA256 string
	Size          int64
}

// Pull fetches package id: it returns the metadata and streams the tarball into
// w, verifying both digests. A package the registry lacks gives ErrNotFound.
func (c *Cache) Pull(ctx context.Context, id string, w io.Writer) (*Entry, error) {
	tag, err := c.tag(id)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(tag, c.options(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s: %w", tag, ErrNotFound)
		}
		return nil, fmt.Errorf("getting %s: %w", tag, err)
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		return nil, fmt.Errorf("%s: media type %s, want %s", tag, desc.MediaType, types.OCIManifestSchema1)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", tag, err)
	}
	if m.ArtifactType != ArtifactType || m.Config.MediaType != MetadataMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != TarballMediaType {
		return nil, fmt.Errorf("%s: not a package artifact (artifactType %q, config %q, %d layers)", tag, m.ArtifactType, m.Config.MediaType, len(m.Layers))
	}
	if m.Config.Size > maxMetadata {
		return nil, fmt.Errorf("%s: metadata of %d bytes", tag, m.Config.Size)
	}
	var meta bytes.Buffer
	if err := c.blob(ctx, m.Config, &meta); err != nil {
		return nil, fmt.Errorf("%s: metadata: %w", tag, err)
	}
	var md struct {
		ID            string `json:"id"`
		TarballSHA256 string `json:"tarball_sha256"`
	}
	if err := json.Unmarshal(meta.Bytes(), &md); err != nil {
		return nil, fmt.Errorf("%s: metadata: %w", tag, err)
	}
	if md.ID != id {
		return nil, fmt.Errorf("%s: metadata names package %q", tag, md.ID)
	}
	layer := m.Layers[0]
	if layer.Digest.Algorithm != "sha256" || layer.Digest.Hex != md.TarballSHA256 {
		return nil, fmt.Errorf("%s: tarball digest %s, metadata says sha256:%s", tag, layer.Digest, md.TarballSHA256)
	}
	if err := c.blob(ctx, layer, w); err != nil {
		return nil, fmt.Errorf("%s: tarball: %w", tag, err)
	}
	return &Entry{Metadata: meta.Bytes(), TarballSHA256: md.TarballSHA256, Size: layer.Size}, nil
}

// blob streams the blob of d into w and checks its size and sha256: a blob
// the registry serves whole with other bytes is ErrCorrupt. (The blob is
// read with a plain GET, not go-containerregistry's verifying reader, to
// tell a corrupted blob from a failed transfer.)
func (c *Cache) blob(ctx context.Context, d v1.Descriptor, w io.Writer) error {
	if d.Digest.Algorithm != "sha256" {
		return fmt.Errorf("digest %s: only sha256 is accepted", d.Digest)
	}
	client, err := c.client(ctx, transport.PullScope)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("blobs/"+d.Digest.String()).String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("blob %s: %w", d.Digest, ErrNotFound)
		}
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, d.Size+1))
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex || n != d.Size {
		return fmt.Errorf("blob %s: got %d bytes with sha256:%s, want %d bytes: %w", d.Digest, n, got, d.Size, ErrCorrupt)
	}
	return nil
}

// client is an HTTP client authorised for scope (transport.PullScope or
// PushScope) on the cache's repository.
func (c *Cache) client(ctx context.Context, scope string) (*http.Client, error) {
	reg := c.repo.Registry
	auth, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, c.transport, []string{c.repo.Scope(scope)})
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt}, nil
}

// endpoint is the URL of /v2/<repository>/<rest>.
func (c *Cache) endpoint(rest string) *url.URL {
	reg := c.repo.Registry
	return &url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/" + c.repo.RepositoryStr() + "/" + rest}
}

// Has reports whether the registry holds a manifest tagged id.
func (c *Cache) Has(ctx context.Context, id string) (bool, error) {
	tag, err := c.tag(id)
	if err != nil {
		return false, err
	}
	if _, err := remote.Head(tag, c.options(ctx)...); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("looking up %s: %w", tag, err)
	}
	return true, nil
}

// Push uploads package id: its metadata (<id>.json bytes) and the tarball file
// with the given sha256, then tags the manifest with the id.
func (c *Cache) Push(ctx context.Context, id string, metadata []byte, tarball, tarballSHA256 string) error {
	tag, err := c.tag(id)
	if err != nil {
		return err
	}
	fi, err := os.Stat(tarball)
	if err != nil {
		return fmt.Errorf("pushing %s: %w", id, err)
	}
	tarHash, err := v1.NewHash("sha256:" + tarballSHA256)
	if err != nil {
		return fmt.Errorf("pushing %s: %w", id, err)
	}
	metaHash, _, err := v1.SHA256(bytes.NewReader(metadata))
	if err != nil {
		return err
	}
	layers := []v1.Layer{
		&blobLayer{digest: metaHash, size: int64(len(metadata)), mediaType: MetadataMediaType,
			open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(metadata)), nil }},
		&blobLayer{digest: tarHash, size: fi.Size(), mediaType: TarballMediaType,
			open: func() (io.ReadCloser, error) { return os.Open(tarball) }},
	}
	for _, l := range layers {
		if err := remote.WriteLayer(c.repo, l, c.options(ctx)...); err != nil {
			return fmt.Errorf("pushing %s: blob: %w", id, err)
		}
	}
	pkgName, _, _ := strings.Cut(id, "--")
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: MetadataMediaType, Digest: metaHash, Size: int64(len(metadata))},
		Layers:        []v1.Descriptor{{MediaType: TarballMediaType, Digest: tarHash, Size: fi.Size()}},
		Annotations:   map[string]string{"org.opencontainers.image.title": id, NameAnnotation: pkgName},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := remote.Put(tag, rawManifest(raw), c.options(ctx)...); err != nil {
		return fmt.Errorf("pushing %s: manifest: %w", id, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusNotFound {
			return true
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
				return true
			}
		}
	}
	return false
}

// rawManifest is a manifest pushed as is.
type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// blobLayer is a blob of known digest, read lazily.
type blobLayer struct {
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
	open      func() (io.ReadCloser, error)
}

var _ v1.Layer = (*blobLayer)(nil)

func (b *blobLayer) Digest() (v1.Hash, error)             { return b.digest, nil }
func (b *blobLayer) DiffID() (v1.Hash, error)             { return b.digest, nil }
func (b *blobLayer) Compressed() (io.ReadCloser, error)   { return b.open() }
func (b *blobLayer) Uncompressed() (io.ReadCloser, error) { return b.open() }
func (b *blobLayer) Size() (int64, error)                 { return b.size, nil }
func (b *blobLayer) MediaType() (types.MediaType, error)  { return b.mediaType, nil }
