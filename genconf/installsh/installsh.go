// Package installsh renders install.sh, the bash path: a plain bash script
// that installs one cluster bundle (whose sha256 it carries) onto a running
// systemd host, or onto a root folder with --root, upgrades it atomically,
// rolls it back and uninstalls it. The on-host tree under the prefix is the
// one an image carries for the same bundle. See install.sh for the layout
// and the crash-safety argument.
package installsh

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
)

//go:embed install.sh
var body string

// Params are the values baked into the script.
type Params struct {
	BundleFile     string // file name of the cluster bundle, e.g. cluster-bundle-0123456789ab.tar.zst
	BundleSHA256   string
	BundleSize     int64  // compressed bytes
	BundleUnpacked int64  // bytes of the tar stream (free-space check)
	Compression    string // "zstd" or "gzip"
	Prefix         string
	ClusterName    string
	ConfigHash     string
	BootstrapURL   string // may be empty
}

var (
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileRE   = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

func (p Params) check() error {
	switch {
	case !sha256RE.MatchString(p.BundleSHA256):
		return fmt.Errorf("bundle sha256 %q is not 64 hex digits", p.BundleSHA256)
	case !fileRE.MatchString(p.BundleFile):
		return fmt.Errorf("bundle file name %q is not a plain file name", p.BundleFile)
	case p.Compression != "zstd" && p.Compression != "gzip":
		return fmt.Errorf("compression %q: want zstd or gzip", p.Compression)
	case p.BundleSize <= 0 || p.BundleUnpacked <= 0:
		return fmt.Errorf("bundle sizes %d/%d must be positive", p.BundleSize, p.BundleUnpacked)
	case !strings.HasPrefix(p.Prefix, "/") || p.Prefix == "/":
		return fmt.Errorf("prefix %q must be an absolute path below /", p.Prefix)
	}
	for _, v := range []string{p.Prefix, p.ClusterName, p.ConfigHash, p.BootstrapURL} {
		if strings.ContainsAny(v, "'\n\\") {
			return fmt.Errorf("value %q cannot be baked into install.sh (quote, backslash or newline)", v)
		}
	}
	return nil
}

// Render returns install.sh for p. The output depends only on p.
func Render(p Params) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("rendering install.sh: %w", err)
	}
	var b strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&b, "%s='%s'\n", k, v) }
	kv("CLUSTER_NAME", p.ClusterName)
	kv("PREFIX", p.Prefix)
	kv("BUNDLE_FILE", p.BundleFile)
	kv("BUNDLE_SHA256", p.BundleSHA256)
	fmt.Fprintf(&b, "BUNDLE_SIZE=%d\nBUNDLE_UNPACKED=%d\n", p.BundleSize, p.BundleUnpacked)
	kv("COMPRESSION", p.Compression)
	kv("CONFIG_HASH", p.ConfigHash)
	kv("BOOTSTRAP_URL", p.BootstrapURL)
	const marker = "#@@BAKED@@\n"
	if !strings.Contains(body, marker) {
		return nil, fmt.Errorf("rendering install.sh: template lacks %q", strings.TrimSpace(marker))
	}
	return []byte(strings.Replace(body, marker, b.String(), 1)), nil
}
