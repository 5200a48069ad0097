package pkgbuild

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goProxy is a file:// Go module proxy in a temp dir.
type goProxy struct {
	t   *testing.T
	dir string
}

func newGoProxy(t *testing.T) *goProxy { return &goProxy{t: t, dir: t.TempDir()} }

func (p *goProxy) url() string { return "file://" + p.dir }

// add publishes module@version with go.mod and the given files (path -> content).
func (p *goProxy) add(module, version, goMod string, files map[string]string) {
	p.t.Helper()
	d := filepath.Join(p.dir, module, "@v")
	if err := os.MkdirAll(d, 0o755); err != nil {
		p.t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	all := map[string]string{"go.mod": goMod}
	for k, v := range files {
		all[k] = v
	}
	for _, name := range sortedKeys(all) {
		w, err := zw.Create(module + "@" + version + "/" + name)
		if err != nil {
			p.t.Fatal(err)
		}
		w.Write([]byte(all[name]))
	}
	if err := zw.Close(); err != nil {
		p.t.Fatal(err)
	}
	for ext, data := range map[string][]byte{
		".info": []byte(`{"Version":"` + version + `","Time":"2024-01-01T00:00:00Z"}`),
		".mod":  []byte(goMod),
		".zip":  buf.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(d, version+ext), data, 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
}

// helloModules publishes example.com/hello (a command) requiring
// example.com/greet; greeting is what greet says.
func helloModules(p *goProxy, greeting string) {
	p.add("example.com/greet", "v1.0.0", "module example.com/greet\n\ngo 1.21\n", map[string]string{
		"greet.go": "package greet\n\nfunc Text() string { return \"" + greeting + "\" }\n",
	})
	p.add("example.com/hello", "v1.2.0", "module example.com/hello\n\ngo 1.21\n\nrequire example.com/greet v1.0.0\n", map[string]string{
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { fmt.Println(greet.Text()) }\n",
	})
}

// goEnvFor points the go_module fetch at proxy p; with shared, the builder
// uses the run's shared cache directory.
func goEnvFor(p *goProxy, shared ...func(*Options)) func(*Options) {
	return func(o *Options) {
		o.GoEnv = []string{"GOPROXY=" + p.url(), "GOSUMDB=off"}
		for _, f := range shared {
			f(o)
		}
	}
}

const helloBuildinfo = `{"sources": {"hello": {"kind": "go_module", "module": "example.com/hello", "version": "v1.2.0", "go_sum": "go.sum"}}}`

const helloScript = `set -eu
mkdir -p $OUT/bin
cd $SRC/hello
go build -ldflags=-buildid= -o $OUT/bin/hello example.com/hello
`

func TestGoModuleSource(t *testing.T) {
	requireBwrap(t)
	requireGo(t)
	proxy := newGoProxy(t)
	helloModules(proxy, "hello from a module")
	r := newRepo(t)
	r.pkg("hello", helloBuildinfo, helloScript, map[string]string{"go.sum": ""})
	sum, err := r.builder(t.TempDir(), nil, goEnvFor(proxy)).GoSum(context.Background(), "example.com/hello", "v1.2.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"example.com/hello v1.2.0 h1:", "example.com/greet v1.0.0 h1:", "example.com/greet v1.0.0/go.mod h1:"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("go.sum lacks %q:\n%s", want, sum)
		}
	}
	r.write(filepath.Join(r.root, "packages/hello/go.sum"), string(sum), 0o644)

	// Two builders with their own stores give the same bytes. They share the
	// run's cache directory (the Go build cache) to keep the test fast.
	var tarballs [][]byte
	var res Result
	for i := 0; i < 2; i++ {
		rs, err := r.builder(t.TempDir(), nil, goEnvFor(proxy, sharedGoCache(t))).Build(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		res = rs[0]
		b, err := os.ReadFile(res.Tarball)
		if err != nil {
			t.Fatal(err)
		}
		tarballs = append(tarballs, b)
	}
	if !bytes.Equal(tarballs[0], tarballs[1]) {
		t.Error("the same go_module package built twice gave different tarballs")
	}
	src := res.Metadata.Sources["hello"]
	if src.Kind != KindGoModule || src.URL != "example.com/hello@v1.2.0" || len(src.Digest) != 64 {
		t.Errorf("metadata source: %+v", src)
	}
	root := t.TempDir()
	extractTarball(t, res.Tarball, root)
	out, err := runBin(filepath.Join(root, "bin/hello"))
	if err != nil || out != "hello from a module\n" {
		t.Errorf("bin/hello: %q, %v", out, err)
	}

	t.Run("go.sum is part of the id", func(t *testing.T) {
		before := planIDs(t, r, goEnvFor(proxy))["hello"]
		r.write(filepath.Join(r.root, "packages/hello/go.sum"), string(sum)+"\n", 0o644)
		defer r.write(filepath.Join(r.root, "packages/hello/go.sum"), string(sum), 0o644)
		if after := planIDs(t, r, goEnvFor(proxy))["hello"]; after == before {
			t.Error("changing go.sum kept the id")
		}
	})
	t.Run("go.sum missing a line", func(t *testing.T) {
		var kept []string
		for _, l := range strings.Split(string(sum), "\n") {
			if !strings.HasPrefix(l, "example.com/greet v1.0.0 h1:") {
				kept = append(kept, l)
			}
		}
		r2 := newRepo(t)
		r2.pkg("hello", helloBuildinfo, helloScript, map[string]string{"go.sum": strings.Join(kept, "\n")})
		_, err := r2.builder(t.TempDir(), nil, goEnvFor(proxy)).Build(context.Background())
		if err == nil || !strings.Contains(err.Error(), "missing go.sum entry") || !strings.Contains(err.Error(), "imagebuilder pkg go-sum example.com/hello@v1.2.0") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("proxy serves other content", func(t *testing.T) {
		evil := newGoProxy(t)
		helloModules(evil, "tampered")
		r2 := newRepo(t)
		r2.pkg("hello", helloBuildinfo, helloScript, map[string]string{"go.sum": string(sum)})
		store := t.TempDir()
		_, err := r2.builder(store, nil, goEnvFor(evil)).Build(context.Background())
		if err == nil || !strings.Contains(err.Error(), "does not match go.sum") || !strings.Contains(err.Error(), "example.com/greet") {
			t.Fatalf("got %v", err)
		}
		if ents, _ := filepath.Glob(filepath.Join(store, "hello--*")); len(ents) != 0 {
			t.Errorf("store holds %v after a refused fetch", ents)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		r2 := newRepo(t)
		r2.pkg("hello", strings.Replace(helloBuildinfo, "v1.2.0", "v9.9.9", 1), helloScript, map[string]string{"go.sum": string(sum)})
		_, err := r2.builder(t.TempDir(), nil, goEnvFor(proxy)).Build(context.Background())
		if err == nil || !strings.Contains(err.Error(), "example.com/hello@v9.9.9") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestGoModuleDefinitionRefuses(t *testing.T) {
	tests := []struct {
		name, source string
		wants        []string
	}{
		{"no go_sum", `{"kind": "go_module", "module": "example.com/x", "version": "v1.0.0"}`, []string{"sources.s.go_sum", "imagebuilder pkg go-sum example.com/x@v1.0.0"}},
		{"query version", `{"kind": "go_module", "module": "example.com/x", "version": "latest", "go_sum": "go.sum"}`, []string{"sources.s.version", "latest"}},
		{"bad module", `{"kind": "go_module", "module": "x", "version": "v1.0.0", "go_sum": "go.sum"}`, []string{"sources.s.module"}},
		{"foreign package", `{"kind": "go_module", "module": "example.com/x", "version": "v1.0.0", "go_sum": "go.sum", "packages": ["example.com/y"]}`, []string{"sources.s.packages[0]"}},
		{"missing go.sum file", `{"kind": "go_module", "module": "example.com/x", "version": "v1.0.0", "go_sum": "nope.sum"}`, []string{"sources.s.go_sum", "does not exist"}},
		{"url on go_module", `{"kind": "go_module", "module": "example.com/x", "version": "v1.0.0", "go_sum": "go.sum", "url": "http://x"}`, []string{"sources.s.url", "not used"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.pkg("p", `{"sources": {"s": `+tc.source+`}}`, "true\n", map[string]string{"go.sum": ""})
			_, err := LoadDefinition(r.root, filepath.Join(r.root, "packages"), "p")
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
