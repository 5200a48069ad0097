package genconf

import (
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"imagebuilder/genconf/installsh"
	"imagebuilder/pkgbuild/archive"
	"imagebuilder/pkgbuild/atomicfile"
	"imagebuilder/pkgbuild/bundle"
)

// Output is what Generate wrote.
type Output struct {
	Bundle       string   `json:"bundle"`
	BundleSHA256 string   `json:"bundle_sha256"`
	Compression  string   `json:"compression"`
	ConfigHash   string   `json:"config_hash"`
	InstallSh    string   `json:"install_sh"`
	Summary      string   `json:"summary"`
	SHA256Sums   string   `json:"sha256sums"`
	Templates    []string `json:"templates,omitempty"` // rendered files, bundle paths
}

// Generate bakes the configuration and the rendered package templates into
// the base bundle and writes, in outDir: cluster-bundle-<digest12>.tar.zst
// (or .tar.gz), install.sh, SHA256SUMS and config-summary.txt. The bundle's
// prefix must be the config's. Nothing appears under a final name until it
// is complete; a bundle that carries secrets is mode 0600.
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
	rendered, err := renderTemplates(cfg, baseBundle, m)
	if err != nil {
		return nil, err
	}
	extra := make([]bundle.File, 0, len(files)+len(rendered))
	var templates []string
	for _, f := range files {
		extra = append(extra, bundle.File{Path: f.Path, Mode: os.FileMode(f.Mode), Data: f.Data})
	}
	for _, f := range rendered {
		extra = append(extra, bundle.File{Path: f.Path, Mode: os.FileMode(f.Mode), Data: f.Data})
		templates = append(templates, f.Path)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", outDir, err)
	}
	// Work in a private (0700) folder beside the outputs, so a bundle with
	// secrets is never readable by others, not even while being written.
	stage, err := os.MkdirTemp(outDir, ".genconf-")
	if err != nil {
		return nil, fmt.Errorf("creating a staging folder in %s: %w", outDir, err)
	}
	defer os.RemoveAll(stage)
	written, sum, _, err := bundle.ExtendFile(baseBundle, stage, extra, hash)
	if err != nil {
		return nil, fmt.Errorf("baking config into %s: %w", baseBundle, err)
	}
	unpacked, err := tarSize(written)
	if err != nil {
		return nil, err
	}
	ext := ".tar.zst"
	if cfg.BundleCompression == CompressionGzip {
		if written, sum, err = recompressGzip(written); err != nil {
			return nil, err
		}
		ext = ".tar.gz"
	}
	mode := os.FileMode(0o644)
	if len(cfg.Secrets) > 0 {
		mode = 0o600
	}
	if err := os.Chmod(written, mode); err != nil {
		return nil, err
	}
	fi, err := os.Stat(written)
	if err != nil {
		return nil, err
	}
	out := &Output{
		Bundle:       filepath.Join(outDir, "cluster-bundle-"+sum[:12]+ext),
		BundleSHA256: sum,
		Compression:  cfg.BundleCompression,
		ConfigHash:   hash,
		InstallSh:    filepath.Join(outDir, "install.sh"),
		Summary:      filepath.Join(outDir, "config-summary.txt"),
		SHA256Sums:   filepath.Join(outDir, "SHA256SUMS"),
		Templates:    templates,
	}
	script, err := installsh.Render(installsh.Params{
		BundleFile: filepath.Base(out.Bundle), BundleSHA256: sum, BundleSize: fi.Size(), BundleUnpacked: unpacked,
		Compression: cfg.BundleCompression, Prefix: cfg.Prefix, ClusterName: cfg.ClusterName,
		ConfigHash: hash, BootstrapURL: cfg.BootstrapURL,
	})
	if err != nil {
		return nil, err
	}
	// Older cluster bundles in the folder are left alone; SHA256SUMS lists them all.
	if err := os.Rename(written, out.Bundle); err != nil {
		return nil, err
	}
	if err := atomicfile.SyncDir(outDir); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(out.InstallSh, script, 0o755); err != nil {
		return nil, err
	}
	if err := writeAtomic(out.Summary, []byte(cfg.Summary(hash, m, out))); err != nil {
		return nil, err
	}
	if err := writeSums(outDir, out.SHA256Sums); err != nil {
		return nil, err
	}
	log.Info("cluster bundle written", "path", out.Bundle, "config_hash", hash[:12], "packages", len(m.Packages),
		"templates", len(templates), "secrets", len(cfg.Secrets), "compression", cfg.BundleCompression)
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

// tarSize is the size of the tar stream inside a zstd bundle.
func tarSize(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := archive.NewDecompressor(f)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	n, err := io.Copy(io.Discard, zr)
	if err != nil {
		return 0, fmt.Errorf("reading the cluster bundle: %w", err)
	}
	return n, nil
}

// recompressGzip turns the zstd bundle p into a gzip one beside it
// (deterministic: no name, no time in the header, fixed level) and returns
// its path and sha256.
func recompressGzip(p string) (string, string, error) {
	out := strings.TrimSuffix(p, filepath.Ext(p)) + ".gz.tmp"
	err := atomicfile.Write(out, 0o600, func(w io.Writer) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		zr, err := archive.NewDecompressor(f)
		if err != nil {
			return err
		}
		defer zr.Close()
		gw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := io.Copy(gw, zr); err != nil {
			return fmt.Errorf("recompressing with gzip: %w", err)
		}
		return gw.Close()
	})
	if err != nil {
		return "", "", err
	}
	sum, err := atomicfile.SHA256(out)
	if err != nil {
		return "", "", err
	}
	return out, sum, os.Remove(p)
}

// Summary is the human-readable account of the configuration. Secrets are
// listed by name only.
func (r *Resolved) Summary(hash string, m *bundle.Manifest, out *Output) string {
	var b strings.Builder
	line := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-18s %s\n", k+":", fmt.Sprintf(format, args...))
	}
	orNone := func(list []string) string {
		if len(list) == 0 {
			return "(none)"
		}
		return strings.Join(list, ", ")
	}
	line("cluster", "%s", r.ClusterName)
	line("prefix", "%s", r.Prefix)
	line("bootstrap url", "%s", orNone(nonEmpty(r.BootstrapURL)))
	line("masters", "%s (%s)", orNone(addrs(r.MasterList)), r.MasterDiscovery)
	line("resolvers", "%s", orNone(addrs(r.Resolvers)))
	line("dns search", "%s", orNone(r.DNSSearch))
	line("ntp servers", "%s", orNone(r.NTPServers))
	line("ip-detect", "%s (timeout %s)", r.IPDetectPath, r.IPDetectTimeout)
	if r.IPDetectPublic != nil {
		line("ip-detect public", "%s", r.IPDetectPublicSrc)
	}
	line("join timeout", "%s", r.JoinTimeout)
	line("compression", "%s", r.BundleCompression)
	names := sortedKeys(r.Secrets)
	if len(names) > 0 {
		line("secrets", "%s (values redacted; in %s, mode 0600)", strings.Join(names, ", "), SecretsPath)
	} else {
		line("secrets", "(none)")
	}
	line("template vars", "%s", orNone(sortedKeys(r.TemplateVars)))
	line("config hash", "%s", hash)
	if out != nil {
		line("bundle", "%s", filepath.Base(out.Bundle))
		line("bundle sha256", "%s", out.BundleSHA256)
		line("templates", "%s", orNone(out.Templates))
	}
	fmt.Fprintf(&b, "packages:\n")
	for _, p := range m.Packages {
		fmt.Fprintf(&b, "  %s\n", p.ID)
	}
	return b.String()
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func writeSums(dir, out string) error {
	var matches []string
	for _, pat := range []string{"cluster-bundle-*.tar.zst", "cluster-bundle-*.tar.gz", "install.sh"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return err
		}
		matches = append(matches, m...)
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
