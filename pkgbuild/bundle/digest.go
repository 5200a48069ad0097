package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"imagebuilder/pkgbuild/atomicfile"
	"io"
	"os"
	"path/filepath"
)

// Digest returns the hex sha256 of a compressed bundle stream.
func Digest(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("digesting bundle: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileName is the file name a bundle with this digest is stored under:
// bundle-<first 12 hex digits>.tar.zst.
func FileName(digest string) string {
	if len(digest) > 12 {
		digest = digest[:12]
	}
	return "bundle-" + digest + ".tar.zst"
}

// AssembleFile assembles in into dir/bundle-<digest12>.tar.zst (temp file, fsync,
// rename) and returns that path, the full digest and the manifest.
func AssembleFile(dir string, in Input) (string, string, *Manifest, error) {
	return writeNamed(dir, func(w io.Writer) (*Manifest, error) { return Assemble(w, in) })
}

// ExtendFile extends the bundle at basePath into dir/bundle-<digest12>.tar.zst and
// returns that path, the full digest and the manifest.
func ExtendFile(basePath, dir string, extra []File, configHash string) (string, string, *Manifest, error) {
	base, err := os.Open(basePath)
	if err != nil {
		return "", "", nil, fmt.Errorf("opening base bundle: %w", err)
	}
	defer base.Close()
	return writeNamed(dir, func(w io.Writer) (*Manifest, error) { return Extend(base, w, extra, configHash) })
}

func writeNamed(dir string, write func(io.Writer) (*Manifest, error)) (string, string, *Manifest, error) {
	tmp, err := os.CreateTemp(dir, ".bundle-*.tmp")
	if err != nil {
		return "", "", nil, fmt.Errorf("creating bundle file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	m, err := write(io.MultiWriter(tmp, h))
	if err != nil {
		return "", "", nil, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", "", nil, fmt.Errorf("writing bundle file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return "", "", nil, fmt.Errorf("syncing bundle file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", "", nil, fmt.Errorf("closing bundle file: %w", err)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	final := filepath.Join(dir, FileName(digest))
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", "", nil, fmt.Errorf("renaming bundle file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", "", nil, err
	}
	return final, digest, m, nil
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
