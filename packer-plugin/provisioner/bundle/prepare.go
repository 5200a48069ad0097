package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/archive"
	"imagebuilder/pkgbuild/bundle"
)

// local is the bundle made ready for upload.
type local struct {
	// Tar is the bundle, decompressed (hosts need no zstd), with its size
	// and SHA-256.
	Tar    string
	Size   int64
	SHA256 string
	// Prefix is where the bundle goes on the host.
	Prefix string
	// Links are the unit links to create: absolute link path → target,
	// exactly those overlay.InstallBundle creates.
	Links []Link
	dir   string
}

// Link is one symlink on the host.
type Link struct{ Path, Target string }

func (l *local) Close() error { return os.RemoveAll(l.dir) }

// prepareLocal reads the cluster bundle's manifest, decompresses it into a
// temporary file, and installs it into a scratch tree with the same code the
// offline builder uses — so a bundle the builder refuses (entries escaping
// the prefix, no units) is refused here, before anything reaches the host.
func prepareLocal(bundlePath, role string) (_ *local, err error) {
	f, err := os.Open(bundlePath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := bundle.ReadManifest(f)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if m.ConfigHash == "" {
		return nil, fmt.Errorf("carries no cluster configuration: run `imagebuilder genconf` on it and use the cluster bundle it writes")
	}
	dir, err := os.MkdirTemp("", "imagebuilder-bundle-")
	if err != nil {
		return nil, err
	}
	l := &local{Prefix: m.Prefix, dir: dir, Tar: filepath.Join(dir, "bundle.tar")}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	zr, err := archive.NewDecompressor(f)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := os.Create(l.Tar)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), zr)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	l.Size, l.SHA256 = n, hex.EncodeToString(h.Sum(nil))

	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	t, err := os.Open(l.Tar)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	tree := overlay.NewTree(root)
	if err := tree.InstallBundle(t, overlay.HostLayout{Prefix: m.Prefix, Role: role}); err != nil {
		return nil, err
	}
	links, err := tree.UnitLinks(m.Prefix)
	if err != nil {
		return nil, err
	}
	for p, target := range links {
		l.Links = append(l.Links, Link{Path: "/" + p, Target: target})
	}
	sort.Slice(l.Links, func(i, j int) bool { return l.Links[i].Path < l.Links[j].Path })
	// The scratch tree is only a check; drop it now to free the space.
	if err := os.RemoveAll(root); err != nil {
		return nil, err
	}
	return l, nil
}
