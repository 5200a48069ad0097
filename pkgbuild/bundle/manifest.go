package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"

	"imagebuilder/pkgbuild/archive"
)

// ManifestVersion is the manifest.json format version this package writes.
const ManifestVersion = 1

// Manifest is manifest.json: every path of the bundle except manifest.json itself,
// the packages, the config hash and the prefix.
type Manifest struct {
	Version         int             `json:"version"`
	Prefix          string          `json:"prefix"`
	ConfigHash      string          `json:"config_hash"`
	SourceDateEpoch int64           `json:"source_date_epoch"`
	Packages        []PackageRecord `json:"packages"`
	Entries         []Entry         `json:"entries"`
}

// PackageRecord names one package of the bundle.
type PackageRecord struct {
	Name          string              `json:"name"`
	ID            string              `json:"id"`
	TarballSHA256 string              `json:"tarball_sha256"`
	Units         map[string][]string `json:"units,omitempty"`
}

// Entry is one path of the bundle, relative to the prefix.
type Entry struct {
	Path string `json:"path"`
	// Type is "dir", "file", "symlink" or "hardlink".
	Type string `json:"type"`
	Mode Mode   `json:"mode"`
	// Size and SHA256 describe the content of a file (for a hardlink: of the file
	// it links to).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Target is a symlink's target, or the bundle path a hardlink links to.
	Target string `json:"target,omitempty"`
}

// Mode is a permission mode, written in JSON as an octal string such as "0755".
type Mode fs.FileMode

// MarshalJSON writes the mode as a four-digit octal string.
func (m Mode) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%04o", uint32(m)))
}

// UnmarshalJSON reads an octal string.
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v&^uint64(fs.ModePerm) != 0 {
		return fmt.Errorf("mode %q: want an octal permission such as \"0644\"", s)
	}
	*m = Mode(v)
	return nil
}

// Lookup returns the entry for a bundle path.
func (m *Manifest) Lookup(p string) (Entry, bool) {
	for _, e := range m.Entries {
		if e.Path == p {
			return e, true
		}
	}
	return Entry{}, false
}

// Package returns the record of the named package.
func (m *Manifest) Package(name string) (PackageRecord, bool) {
	for _, p := range m.Packages {
		if p.Name == name {
			return p, true
		}
	}
	return PackageRecord{}, false
}

func (m *Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	return append(b, '\n'), nil
}

func decodeManifest(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", manifestPath, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decoding %s: trailing data", manifestPath)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", manifestPath, m.Version, ManifestVersion)
	}
	if err := checkPrefix(m.Prefix); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestPath, err)
	}
	return &m, nil
}

// ReadManifest reads the manifest.json of a bundle stream (zstd-compressed tar).
// It reads up to that entry only and checks the entry names it passes, not the
// whole bundle; Extend and the overlay validate every entry.
func ReadManifest(r io.Reader) (*Manifest, error) {
	zr, err := archive.NewDecompressor(r)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("bundle has no %s", manifestPath)
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return nil, fmt.Errorf("reading bundle: %w", err)
		}
		name := hdr.Name
		if hdr.Typeflag == tar.TypeDir {
			name = path.Clean(name)
		}
		if err := archive.CheckName(name); err != nil {
			return nil, fmt.Errorf("reading bundle: %w", err)
		}
		if name != manifestPath {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("bundle %s is not a regular file", manifestPath)
		}
		if hdr.Size > maxManifestSize {
			return nil, fmt.Errorf("bundle %s is too large (%d bytes)", manifestPath, hdr.Size)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", manifestPath, err)
		}
		return decodeManifest(b)
	}
}

const maxManifestSize = 1 << 30
