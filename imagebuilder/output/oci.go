package output

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"imagebuilder/pkgbuild/atomicfile"
)

// OCIOptions describe the image around the rootfs layer.
type OCIOptions struct {
	// RefName is the org.opencontainers.image.ref.name annotation of the
	// image in index.json ("host").
	RefName string
	// Epoch is the image's creation time (seconds).
	Epoch int64
	// Labels are added to the image config.
	Labels map[string]string
}

// OCIImage builds a one-layer linux/amd64 OCI image from an uncompressed
// rootfs tar. The layer is gzip-compressed into layerPath (a scratch file
// the caller removes), once; the image reads it from there.
func OCIImage(rootfsTar, layerPath string, o OCIOptions) (v1.Image, error) {
	if err := gzipFile(rootfsTar, layerPath); err != nil {
		return nil, fmt.Errorf("compressing the rootfs layer: %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(layerPath) },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("rootfs layer: %w", err)
	}
	created := v1.Time{Time: time.Unix(o.Epoch, 0).UTC()}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: created, CreatedBy: "imagebuilder build --format oci", Comment: "root filesystem"},
	})
	if err != nil {
		return nil, fmt.Errorf("assembling the image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created, cf.OS, cf.Architecture = created, "linux", "amd64"
	cf.Config.Cmd = []string{"/sbin/init"}
	cf.Config.Labels = o.Labels
	return mutate.ConfigFile(img, cf)
}

// WriteOCILayout writes img as an OCI image layout directory at out,
// annotated with refName. out appears complete or not at all; an existing
// out is replaced.
func WriteOCILayout(img v1.Image, out, refName string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": refName})); err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	// layout writes blobs with mode 0644 and dirs 0755 regardless of the
	// umask? Normalize the directory itself, which MkdirTemp made 0700.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(out))
}

// PushOCI pushes img to a registry reference ("127.0.0.1:5000/host:tag").
// Plain HTTP is used for loopback registries only.
func PushOCI(ctx context.Context, img v1.Image, ref string) (string, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("oci push reference %q: %w", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing to %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Digest(d.String()).String(), nil
}

// gzipFile compresses src into dst deterministically (no name, no time in
// the gzip header; fixed level).
func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		if _, err := io.Copy(zw, in); err != nil {
			return err
		}
		return zw.Close()
	})
}
