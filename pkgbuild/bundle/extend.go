package bundle

import (
	"bytes"
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

// spooled is the base bundle: in memory when it fits the retain budget, else
// in a temp file.
type spooled struct {
	data []byte
	file *os.File
}

// spool keeps base in memory up to limit bytes, else in a temp file.
func spool(base io.Reader, limit int64) (*spooled, error) {
	var buf bytes.Buffer
	if f, ok := base.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() <= limit {
			buf.Grow(int(fi.Size()) + bytes.MinRead) // one allocation, no copies
		}
	}
	n, err := io.Copy(&buf, io.LimitReader(base, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading base bundle: %w", err)
	}
	if n <= limit {
		return &spooled{data: buf.Bytes()}, nil
	}
	tmp, err := os.CreateTemp("", "bundle-base-*.tar.zst")
	if err != nil {
		return nil, fmt.Errorf("spooling base bundle: %w", err)
	}
	sp := &spooled{file: tmp}
	if _, err := io.Copy(tmp, io.MultiReader(&buf, base)); err != nil {
		sp.Close()
		return nil, fmt.Errorf("spooling base bundle: %w", err)
	}
	return sp, nil
}

// reader reads the spooled bundle from its start.
func (sp *spooled) reader() (io.Reader, error) {
	if sp.file == nil {
		return bytes.NewReader(sp.data), nil
	}
	if _, err := sp.file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("spooling base bundle: %w", err)
	}
	return sp.file, nil
}

func (sp *spooled) Close() {
	if sp.file != nil {
		sp.file.Close()
		os.Remove(sp.file.Name())
	}
}

// Extend copies the base bundle to out, validating every entry and checking it
// against the base manifest, replaces or adds the extra etc/ files (other etc/
// files of the base are kept), and writes a new manifest.json carrying configHash.
// This is how the per-cluster bundle is made from the base bundle.
func Extend(base io.Reader, out io.Writer, extra []File, configHash string) (*Manifest, error) {
	return extend(base, out, extra, configHash, retainBudget)
}

// extend is Extend keeping a base bundle of up to spoolLimit bytes in memory.
func extend(base io.Reader, out io.Writer, extra []File, configHash string, spoolLimit int64) (*Manifest, error) {
	sp, err := spool(base, spoolLimit)
	if err != nil {
		return nil, err
	}
	defer sp.Close()
	r, err := sp.reader()
	if err != nil {
		return nil, err
	}
	bm, err := ReadManifest(r)
	if err != nil {
		return nil, fmt.Errorf("base bundle: %w", err)
	}
	sc, err := scanBase(sp, bm.Prefix)
	if err != nil {
		return nil, fmt.Errorf("base bundle: %w", err)
	}
	items := sc.items
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
	src := source{label: "base bundle", sha: sc.sha, layout: sc.layout, data: sp.data}
	if sp.file != nil {
		src.file = sp.file.Name()
	}
	return finishBundle(out, m, kept, []source{src})
}

// scanBase validates every entry of a bundle, digests its files and learns
// its frame layout (and the spool file's sha256). The manifest.json entry is
// left out of the result.
func scanBase(sp *spooled, prefix string) (*packageScan, error) {
	var fr *archive.FramedReader
	h := sha256.New()
	if sp.file == nil {
		fr = archive.NewFramedReaderBytes(sp.data)
	} else {
		r, err := sp.reader()
		if err != nil {
			return nil, err
		}
		fr = archive.NewFramedReader(io.TeeReader(r, h))
	}
	defer fr.Close()
	rd := archive.NewReader(fr, archive.Policy{Prefix: prefix, Scope: bundleScope})
	sc := &packageScan{}
	files := map[string]item{}
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		it := item{e: *e, off: fr.Offset()}
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
		sc.items = append(sc.items, it)
	}
	// The rest of the zstd stream (checksums are checked on the way).
	if _, err := io.Copy(io.Discard, fr); err != nil {
		return nil, fmt.Errorf("reading past the archive's end: %w", err)
	}
	fr.Close()
	if sp.file != nil {
		r := io.TeeReader(sp.file, h) // what the reader had not consumed
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, fmt.Errorf("digesting base bundle: %w", err)
		}
		sc.sha = hex.EncodeToString(h.Sum(nil))
	}
	sc.layout = newLayout(fr)
	sc.layout.markCopies(sc.items)
	return sc, nil
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
