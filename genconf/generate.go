package genconf

import (
	"fmt"
	"imagebuilder/pkgbuild/atomicfile"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"imagebuilder/pkgbuild/bundle"
)

// Output is what Generate wrote.
type Output struct {
	Bundle       string `json:"bundle"`
	BundleSHA256 string `json:"bundle_sha256"`
	ConfigHash   string `json:"config_hash"`
	Summary      string `json:"summary"`
	SHA256Sums   string `json:"sha256sums"`
}

// Generate bakes the configuration into the base bundle and writes, in
// outDir: cluster-bundle-<digest12>.tar.zst, SHA256SUMS and config-summary.txt.
// The bundle's prefix must be the config's. Nothing appears under a final
// name until it is complete.
func Generate(log *slog.Logger, cfg *Resolved, baseBundle, outDir string) (*Output, error) {
	m, err := readManifest(baseBundle)
	if err != nil {
		return nil, fmt.Errorf("base bundle %s: %w", baseBundle, err)
	}
	if m.Prefix != cfg.Prefix {
		return nil, fmt.Errorf("prefix: config says %q but bundle %s was built for %q; rebuild the packages with --prefix %s or change prefix in config.yaml",
			cfg.Prefix, baseBundle, m.Prefix, cfg.Prefix)
	}
	files, hash := cfg.Files()
	extra := make([]bundle.File, len(files))
	for i, f := range files {
		extra[i] = bundle.File{Path: f.Path, Mode: os.FileMode(f.Mode), Data: f.Data}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", outDir, err)
	}
	written, sum, _, err := bundle.ExtendFile(baseBundle, outDir, extra, hash)
	if err != nil {
		return nil, fmt.Errorf("baking config into %s: %w", baseBundle, err)
	}
	out := &Output{
		Bundle:       filepath.Join(outDir, "cluster-bundle-"+sum[:12]+".tar.zst"),
		BundleSHA256: sum,
		ConfigHash:   hash,
		Summary:      filepath.Join(outDir, "config-summary.txt"),
		SHA256Sums:   filepath.Join(outDir, "SHA256SUMS"),
	}
	// Older cluster bundles in the folder are left alone; SHA256SUMS lists them all.
	if err := os.Rename(written, out.Bundle); err != nil {
		return nil, err
	}
	if err := writeAtomic(out.Summary, []byte(cfg.Summary(hash, m))); err != nil {
		return nil, err
	}
	if err := writeSums(outDir, out.SHA256Sums); err != nil {
		return nil, err
	}
	log.Info("cluster bundle written", "path", out.Bundle, "config_hash", hash[:12], "packages", len(m.Packages))
	return out, nil
}

func readManifest(path string) (*bundle.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return bundle.ReadManifest(f)
}

// Summary is the human-readable account of the configuration.
func (r *Resolved) Summary(hash string, m *bundle.Manifest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster:      %s\n", r.ClusterName)
	fmt.Fprintf(&b, "prefix:       %s\n", r.Prefix)
	masters := make([]string, len(r.MasterList))
	for i, a := range r.MasterList {
		masters[i] = a.String()
	}
	fmt.Fprintf(&b, "masters:      %s (static)\n", strings.Join(masters, ", "))
	fmt.Fprintf(&b, "ip-detect:    %s (timeout %s)\n", r.IPDetectPath, r.IPDetectTimeout)
	fmt.Fprintf(&b, "join timeout: %s\n", r.JoinTimeout)
	fmt.Fprintf(&b, "config hash:  %s\n", hash)
	fmt.Fprintf(&b, "packages:\n")
	for _, p := range m.Packages {
		fmt.Fprintf(&b, "  %s\n", p.ID)
	}
	return b.String()
}

func writeSums(dir, out string) error {
	matches, err := filepath.Glob(filepath.Join(dir, "cluster-bundle-*.tar.zst"))
	if err != nil {
		return err
	}
	sort.Strings(matches)
	var b strings.Builder
	for _, p := range matches {
		sum, err := atomicfile.SHA256(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, filepath.Base(p))
	}
	return writeAtomic(out, []byte(b.String()))
}

func writeAtomic(p string, data []byte) error { return atomicfile.WriteFile(p, data, 0o644) }
