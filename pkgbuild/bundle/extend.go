package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"imagebuilder/pkgbuild/archive"
)

// bundleScope confines symlinks and hardlinks inside packages/<id> to that
// package; everything else is confined to the bundle root.
func bundleScope(name string) string {
	if rest, ok := strings.CutPrefix(name, "packages/"); ok {
		id, _, _ := strings.Cut(rest, "/")
		return "packages/" + id
	}
	return ""
}

func bundleOpener(file, prefix string) func() (*archive.Reader, io.Closer, error) {
	return func() (*archive.Reader, io.Closer, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, nil, fmt.Errorf("opening bundle: %w", err)
		}
		zr, err := archive.NewDecompressor(f)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return archive.NewReader(zr, archive.Policy{Prefix: prefix, Scope: bundleScope}), closers{zr, f}, nil
	}
}

// Extend copies the base bundle to out, validating every entry and checking it
// against the base manifest, replaces or adds the extra etc/ files (other etc/
// files of the base are kept), and writes a new manifest.json carrying configHash.
// This is how the per-cluster bundle is made from the base bundle.
func Extend(base io.Reader, out io.Writer, extra []File, configHash string) (*Manifest, error) {
	tmp, err := os.CreateTemp("", "bundle-base-*.tar.zst")
	if err != nil {
		return nil, fmt.Errorf("spooling base bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, base); err != nil {
		return nil, fmt.Errorf("spooling base bundle: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("spooling base bundle: %w", err)
	}
	bm, err := ReadManifest(tmp)
	if err != nil {
		return nil, fmt.Errorf("base bundle: %w", err)
	}
	open := bundleOpener(tmp.Name(), bm.Prefix)
	items, err := scanBase(open)
	if err != nil {
		return nil, fmt.Errorf("base bundle: %w", err)
	}
	if err := matchManifest(bm, items); err != nil {
		return nil, fmt.Errorf("base bundle: %w", err)
	}
	existing := map[string]archive.Type{}
	for _, it := range items {
		existing[it.e.Name] = it.e.Type
	}
	if t, ok := existing["etc"]; ok && t != archive.TypeDir {
		return nil, fmt.Errorf("base bundle: etc is a %v", t)
	}
	etc, err := etcItems(extra, existing)
	if err != nil {
		return nil, err
	}
	drop := map[string]bool{manifestPath: true}
	for _, f := range extra {
		if _, ok := existing[f.Path]; ok {
			drop[f.Path] = true
		}
	}
	kept := items[:0]
	for _, it := range items {
		if !drop[it.e.Name] {
			kept = append(kept, it)
		}
	}
	if _, ok := existing["etc"]; !ok {
		kept = append(kept, genDir("etc"))
	}
	kept = append(kept, etc...)
	m := &Manifest{
		Version:         ManifestVersion,
		Prefix:          bm.Prefix,
		ConfigHash:      configHash,
		SourceDateEpoch: bm.SourceDateEpoch,
		Packages:        bm.Packages,
	}
	src := source{label: "base bundle", open: open, rename: func(n string) string { return n }, drop: drop}
	return finishBundle(out, m, kept, []source{src})
}

// scanBase validates every entry of a bundle and digests its files. The
// manifest.json entry is left out of the result.
func scanBase(open func() (*archive.Reader, io.Closer, error)) ([]item, error) {
	rd, c, err := open()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var items []item
	files := map[string]item{}
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return items, nil
		}
		if err != nil {
			return nil, err
		}
		it := item{e: *e}
		switch e.Type {
		case archive.TypeFile:
			h := sha256.New()
			if _, err := io.Copy(h, rd); err != nil {
				return nil, fmt.Errorf("reading %q: %w", e.Name, err)
			}
			it.sha, it.size = hex.EncodeToString(h.Sum(nil)), e.Size
			files[e.Name] = it
		case archive.TypeHardlink:
			if bundleScope(e.Name) == "" {
				return nil, &archive.EntryError{Name: e.Name, Reason: "hardlink outside packages/"}
			}
			it.sha, it.size = files[e.Linkname].sha, files[e.Linkname].size
		}
		if e.Name == manifestPath {
			if e.Type != archive.TypeFile {
				return nil, fmt.Errorf("%s is a %v", manifestPath, e.Type)
			}
			continue
		}
		items = append(items, it)
	}
}

// matchManifest checks that the manifest describes exactly the scanned entries.
func matchManifest(m *Manifest, items []item) error {
	got := manifestEntries(items)
	if len(got) != len(m.Entries) {
		return fmt.Errorf("%s lists %d entries, the bundle has %d", manifestPath, len(m.Entries), len(got))
	}
	for i, e := range got {
		if m.Entries[i] != e {
			return fmt.Errorf("%s does not match the bundle at %q", manifestPath, e.Path)
		}
	}
	return nil
}
