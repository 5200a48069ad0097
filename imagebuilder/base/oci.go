package base

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Platform is the platform picked from multi-platform images.
var Platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// refNameAnnotation names an image in an OCI layout's index.
const refNameAnnotation = "org.opencontainers.image.ref.name"

func openOCI(ctx context.Context, kind Kind, target string) (*Base, error) {
	var img v1.Image
	var err error
	switch kind {
	case KindOCILayout:
		p, tag := splitTag(target)
		img, err = layoutImage(p, tag)
	case KindDockerArchive:
		p, tag := splitTag(target)
		var t *name.Tag
		if tag != "" {
			nt, err := name.NewTag(tag)
			if err != nil {
				return nil, fmt.Errorf("tag %q: %w", tag, err)
			}
			t = &nt
		}
		img, err = tarball.ImageFromPath(p, t)
	case KindRegistry:
		var ref name.Reference
		ref, err = name.ParseReference(target)
		if err != nil {
			return nil, fmt.Errorf("image reference %q: %w", target, err)
		}
		img, err = remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(Platform),
			remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	if err != nil {
		return nil, err
	}
	return imageBase(img)
}

// imageBase makes a Base of an image: its digest is the config digest, its
// stream the flattened layers.
func imageBase(img v1.Image) (*Base, error) {
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("reading the image config: %w", err)
	}
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" && (cf.OS != Platform.OS || cf.Architecture != Platform.Architecture) {
		return nil, fmt.Errorf("image is %s/%s, not %s/%s", cf.OS, cf.Architecture, Platform.OS, Platform.Architecture)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing the image's layers: %w", err)
	}
	if len(layers) == 0 {
		return nil, errors.New("the image has no layers")
	}
	ls := make([]Layer, len(layers))
	for i, l := range layers {
		ls[i] = ociLayer{l}
	}
	return &Base{Digest: cfg.String(), open: func(ctx context.Context) (io.ReadCloser, error) {
		return Flatten(ctx, ls), nil
	}}, nil
}

type ociLayer struct{ l v1.Layer }

func (o ociLayer) Open() (io.ReadCloser, error) { return o.l.Uncompressed() }
func (o ociLayer) String() string {
	if d, err := o.l.DiffID(); err == nil {
		return d.String()
	}
	return "?"
}

// splitTag splits "PATH:TAG" when PATH exists and TAG has no slash.
func splitTag(s string) (string, string) {
	i := strings.LastIndex(s, ":")
	if i <= 0 || strings.Contains(s[i+1:], "/") {
		return s, ""
	}
	if _, err := os.Stat(s); err == nil {
		return s, "" // the whole thing is a path
	}
	return s[:i], s[i+1:]
}

// layoutImage picks the image named tag (or the only image) in an OCI layout.
func layoutImage(p, tag string) (v1.Image, error) {
	lp, err := layout.FromPath(p)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout: %w", err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout index: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout index: %w", err)
	}
	var picked []v1.Descriptor
	var names []string
	for _, d := range im.Manifests {
		n := d.Annotations[refNameAnnotation]
		names = append(names, fmt.Sprintf("%q", n))
		if tag == "" || n == tag || strings.HasSuffix(n, ":"+tag) {
			picked = append(picked, d)
		}
	}
	switch {
	case len(picked) == 0 && tag != "":
		return nil, fmt.Errorf("OCI layout %s has no image named %q (it has %s)", p, tag, strings.Join(names, ", "))
	case len(picked) == 0:
		return nil, fmt.Errorf("OCI layout %s holds no image", p)
	case len(picked) > 1:
		return nil, fmt.Errorf("OCI layout %s holds %d images (%s): name one as oci:PATH:TAG", p, len(picked), strings.Join(names, ", "))
	}
	d := picked[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		cm, err := child.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, c := range cm.Manifests {
			if c.Platform != nil && c.Platform.OS == Platform.OS && c.Platform.Architecture == Platform.Architecture {
				return child.Image(c.Digest)
			}
		}
		return nil, fmt.Errorf("OCI layout %s: image index %s has no %s/%s image", p, d.Digest, Platform.OS, Platform.Architecture)
	}
	return idx.Image(d.Digest)
}
