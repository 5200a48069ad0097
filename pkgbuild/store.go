package pkgbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"imagebuilder/pkgbuild/atomicfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Store is a directory of built packages: <id>.tar.zst, <id>.json (metadata) and
// <id>.log (build log), plus cache/ (sources, GOCACHE), trees/ (extracted
// packages that builds depend on) and tmp/ (build work dirs).
type Store struct {
	Dir string
}

// Metadata is <id>.json.
type Metadata struct {
	Name            string                  `json:"name"`
	ID              string                  `json:"id"`
	BuilderVersion  string                  `json:"builder_version"`
	Prefix          string                  `json:"prefix"`
	SourceDateEpoch int64                   `json:"source_date_epoch"`
	Requires        map[string]string       `json:"requires"`
	Units           map[string][]string     `json:"units"`
	StateDirectory  bool                    `json:"state_directory"`
	Username        []string                `json:"username"`
	Sources         map[string]SourceDigest `json:"sources"`
	TarballSHA256   string                  `json:"tarball_sha256"`
}

// ErrCorrupt marks a store entry whose tarball does not match its metadata.
var ErrCorrupt = errors.New("corrupt store entry")

// TarballPath is where the package tarball of id lives.
func (s Store) TarballPath(id string) string { return filepath.Join(s.Dir, id+".tar.zst") }

// MetadataPath is where the metadata of id lives.
func (s Store) MetadataPath(id string) string { return filepath.Join(s.Dir, id+".json") }

// LogPath is where the build log of id lives.
func (s Store) LogPath(id string) string { return filepath.Join(s.Dir, id+".log") }

func (s Store) treePath(id string) string { return filepath.Join(s.Dir, "trees", id) }

// Lookup returns the metadata of id after checking the tarball's sha256. A missing
// entry gives an error matching fs.ErrNotExist, a mismatch one matching ErrCorrupt.
func (s Store) Lookup(id string) (*Metadata, error) {
	b, err := os.ReadFile(s.MetadataPath(id))
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", id, err)
	}
	var md Metadata
	if err := json.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("looking up %s: %w: metadata: %v", id, ErrCorrupt, err)
	}
	if md.ID != id {
		return nil, fmt.Errorf("looking up %s: %w: metadata names id %q", id, ErrCorrupt, md.ID)
	}
	sum, err := fileDigest(s.TarballPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("looking up %s: %w", id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", id, err)
	}
	if sum != md.TarballSHA256 {
		return nil, fmt.Errorf("looking up %s: %w: tarball sha256 %s, metadata says %s", id, ErrCorrupt, sum, md.TarballSHA256)
	}
	return &md, nil
}

func (s Store) writeMetadata(md *Metadata) error {
	b, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding metadata of %s: %w", md.ID, err)
	}
	return writeFileAtomic(s.MetadataPath(md.ID), append(b, '\n'), 0o644)
}

func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return atomicfile.WriteFile(path, data, mode)
}

func writeAtomic(path string, mode fs.FileMode, write func(io.Writer) error) error {
	return atomicfile.Write(path, mode, write)
}

// sha256Writer passes writes through and digests them.
type sha256Writer struct {
	w io.Writer
	h hash.Hash
}

func newSHA256Writer(w io.Writer) *sha256Writer { return &sha256Writer{w: w, h: sha256.New()} }

func (s *sha256Writer) Write(b []byte) (int, error) {
	n, err := s.w.Write(b)
	s.h.Write(b[:n])
	return n, err
}

func (s *sha256Writer) sum() string { return hex.EncodeToString(s.h.Sum(nil)) }
