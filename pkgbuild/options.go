package pkgbuild

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// DefaultPrefix is the install prefix unless configured otherwise.
const DefaultPrefix = "/opt/cluster"

// Options configure a Builder.
type Options struct {
	// RepoRoot is the repository root; dir sources must stay inside it.
	RepoRoot string
	// PackagesDir holds the package folders; default <RepoRoot>/packages.
	PackagesDir string
	// StoreDir holds built packages (see Store).
	StoreDir string
	// CacheDir holds the source cache and GOCACHE; default <StoreDir>/cache.
	CacheDir string
	// Prefix is the install prefix builds are made for; default DefaultPrefix.
	Prefix string
	// SourceDateEpoch is the mtime of every tarball entry and $SOURCE_DATE_EPOCH.
	SourceDateEpoch int64
	// Jobs is how many builds run at once; default the number of CPUs.
	Jobs int
	// Sandbox runs the build scripts; default &Bwrap{}.
	Sandbox Sandbox
	// HTTPClient fetches http(s) sources; default a client with a 10 minute timeout.
	HTTPClient *http.Client
	// GoEnv is added to the environment of the go commands that fetch
	// go_module sources (outside the sandbox), e.g. GOPROXY or GONOSUMDB.
	GoEnv []string
	// Path is $PATH inside the sandbox; default DefaultPath().
	Path string
	// Logger receives progress; default discards.
	Logger *slog.Logger
}

// DefaultPath is the sandbox $PATH: the usual system directories with the
// directory of the host's go command first.
func DefaultPath() string {
	dirs := []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}
	goDir := "/usr/local/go/bin"
	if p, err := exec.LookPath("go"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			goDir = filepath.Dir(abs)
		}
	}
	for _, d := range dirs {
		if d == goDir {
			return strings.Join(dirs, ":")
		}
	}
	return strings.Join(append([]string{goDir}, dirs...), ":")
}

func (o Options) withDefaults() (Options, error) {
	if o.RepoRoot == "" {
		return o, errors.New("pkgbuild: RepoRoot is required")
	}
	if o.StoreDir == "" {
		return o, errors.New("pkgbuild: StoreDir is required")
	}
	var err error
	if o.RepoRoot, err = filepath.Abs(o.RepoRoot); err != nil {
		return o, fmt.Errorf("pkgbuild: %w", err)
	}
	if o.StoreDir, err = filepath.Abs(o.StoreDir); err != nil {
		return o, fmt.Errorf("pkgbuild: %w", err)
	}
	if o.PackagesDir == "" {
		o.PackagesDir = filepath.Join(o.RepoRoot, "packages")
	}
	if o.PackagesDir, err = filepath.Abs(o.PackagesDir); err != nil {
		return o, fmt.Errorf("pkgbuild: %w", err)
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(o.StoreDir, "cache")
	}
	if o.CacheDir, err = filepath.Abs(o.CacheDir); err != nil {
		return o, fmt.Errorf("pkgbuild: %w", err)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !filepath.IsAbs(o.Prefix) || filepath.Clean(o.Prefix) != o.Prefix || o.Prefix == "/" {
		return o, fmt.Errorf("pkgbuild: prefix %q must be a clean absolute path other than /", o.Prefix)
	}
	if o.SourceDateEpoch < 0 {
		return o, fmt.Errorf("pkgbuild: negative SourceDateEpoch %d", o.SourceDateEpoch)
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Sandbox == nil {
		o.Sandbox = &Bwrap{}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Minute}
	}
	if o.Path == "" {
		o.Path = DefaultPath()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
