package pkgbuild

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"imagebuilder/pkgbuild/archive"
)

// testRepo is a repository in a temp dir with a packages/ folder.
type testRepo struct {
	t    *testing.T
	root string
}

func newRepo(t *testing.T) *testRepo {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, root: root}
}

// pkg writes packages/<name>/buildinfo.json, build and extra files (paths
// relative to the package folder).
func (r *testRepo) pkg(name, buildinfo, script string, files map[string]string) {
	r.t.Helper()
	dir := filepath.Join(r.root, "packages", name)
	r.write(filepath.Join(dir, "buildinfo.json"), buildinfo, 0o644)
	r.write(filepath.Join(dir, "build"), script, 0o644)
	for p, data := range files {
		r.write(filepath.Join(dir, p), data, 0o644)
	}
}

func (r *testRepo) write(p, data string, mode os.FileMode) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		r.t.Fatal(err)
	}
}

// lockedBuffer collects log output from parallel builds.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// builder returns a Builder on the repo with the given store, logging to log.
func (r *testRepo) builder(store string, log *lockedBuffer, mod func(*Options)) *Builder {
	r.t.Helper()
	if log == nil {
		log = &lockedBuffer{}
	}
	o := Options{
		RepoRoot: r.root,
		StoreDir: store,
		Jobs:     2,
		Logger:   slog.New(slog.NewTextHandler(log, nil)),
	}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func requireBwrap(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bwrap not found: apt-get install bubblewrap")
	}
}

// tarEntry is one entry of a package tarball with its content.
type tarEntry struct {
	e    archive.Entry
	data string
}

// readTarball lists a package tarball through the strict reader.
func readTarball(t *testing.T, file string) ([]string, map[string]tarEntry) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := archive.NewDecompressor(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	r := archive.NewReader(zr, archive.Policy{Prefix: DefaultPrefix})
	var names []string
	m := map[string]tarEntry{}
	for {
		e, err := r.Next()
		if err == io.EOF {
			return names, m
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name)
		m[e.Name] = tarEntry{*e, string(data)}
	}
}

func resultByName(t *testing.T, rs []Result, name string) Result {
	t.Helper()
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no result for %s in %+v", name, rs)
	return Result{}
}

func requireGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go not on PATH: go_module sources need the Go toolchain (Go 1.26 from go.dev)")
	}
}

// extractTarball unpacks a package tarball into dir with the strict reader.
func extractTarball(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := archive.NewDecompressor(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if err := archive.Extract(archive.NewReader(zr, archive.Policy{Prefix: DefaultPrefix}), dir); err != nil {
		t.Fatal(err)
	}
}

// runBin runs a binary and returns its combined output.
func runBin(path string, args ...string) (string, error) {
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}

// testGoCache is one CacheDir for the tests that compile Go in the sandbox, so
// the standard library is compiled once per test run, not once per builder.
var testGoCache struct {
	once sync.Once
	dir  string
	err  error
}

// sharedGoCache sets o.CacheDir to the run's shared cache directory.
func sharedGoCache(t *testing.T) func(*Options) {
	t.Helper()
	testGoCache.once.Do(func() { testGoCache.dir, testGoCache.err = os.MkdirTemp("", "pkgbuild-test-cache-") })
	if testGoCache.err != nil {
		t.Fatal(testGoCache.err)
	}
	return func(o *Options) { o.CacheDir = testGoCache.dir }
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testGoCache.dir != "" {
		removeAll(testGoCache.dir)
	}
	os.Exit(code)
}
