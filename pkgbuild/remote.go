package pkgbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"imagebuilder/pkgbuild/ocicache"
)

// pull fetches package p from the remote cache into the store: tarball first,
// then metadata, each written atomically, then the entry is looked up (and so
// verified) like any other. Any problem is an error; the caller builds instead.
func (b *Builder) pull(ctx context.Context, p *Package) (*Metadata, error) {
	if err := os.MkdirAll(b.store.Dir, 0o755); err != nil {
		return nil, err
	}
	var entry *ocicache.Entry
	err := writeAtomic(b.store.TarballPath(p.ID), 0o644, func(w io.Writer) error {
		var err error
		entry, err = b.remote.Pull(ctx, p.ID, w)
		return err
	})
	if err != nil {
		return nil, err
	}
	var md Metadata
	dec := json.NewDecoder(bytes.NewReader(entry.Metadata))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&md); err != nil {
		os.Remove(b.store.TarballPath(p.ID))
		return nil, fmt.Errorf("metadata of %s from %s: %w", p.ID, b.remote, err)
	}
	if md.ID != p.ID || md.Name != p.Name || md.BuilderVersion != BuilderVersion || md.Prefix != b.opts.Prefix || md.TarballSHA256 != entry.TarballSHA256 {
		os.Remove(b.store.TarballPath(p.ID))
		return nil, fmt.Errorf("metadata of %s from %s does not describe this package: %+v", p.ID, b.remote, md)
	}
	if err := writeFileAtomic(b.store.LogPath(p.ID), fmt.Appendf(nil, "pkgbuild: %s pulled from %s (tarball sha256 %s); built elsewhere\n", p.ID, b.remote, md.TarballSHA256), 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(b.store.MetadataPath(p.ID), entry.Metadata, 0o644); err != nil {
		return nil, err
	}
	return b.store.Lookup(p.ID)
}

// push uploads a package the builder just built.
func (b *Builder) push(ctx context.Context, md *Metadata) error {
	meta, err := os.ReadFile(b.store.MetadataPath(md.ID))
	if err != nil {
		return err
	}
	return b.remote.Push(ctx, md.ID, meta, b.store.TarballPath(md.ID), md.TarballSHA256)
}

// repair uploads a package again whose remote copy a pull found corrupted.
func (b *Builder) repair(ctx context.Context, md *Metadata) error {
	meta, err := os.ReadFile(b.store.MetadataPath(md.ID))
	if err != nil {
		return err
	}
	return b.remote.Repair(ctx, md.ID, meta, b.store.TarballPath(md.ID), md.TarballSHA256)
}
