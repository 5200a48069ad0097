package pkgbuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"imagebuilder/pkgbuild/archive"
	"imagebuilder/pkgbuild/bundle"
)

func TestBuildEnvironmentAndRequires(t *testing.T) {
	requireBwrap(t)
	r := newRepo(t)
	r.pkg("base-lib", `{}`, `set -eu
mkdir -p "$OUT/share"
echo "hello from base" > "$OUT/share/greeting"
`, nil)
	r.pkg("app", `{"requires": ["base-lib"], "sources": {"src": {"kind": "dir", "path": "src"}}, "environment": {"EXTRA": "yes"}}`, `set -eu
mkdir -p "$OUT/bin"
env -0 | tr '\0' '\n' | grep -v -E '^(PWD|SHLVL|_|OLDPWD)=' | sort > "$OUT/env.txt"
cat "$BASE_LIB_PATH/share/greeting" > "$OUT/from-dep"
if touch "$BASE_LIB_PATH/x" 2>/dev/null; then echo writable; else echo readonly; fi > "$OUT/dep-ro"
if touch /usr/pkgbuild-test 2>/dev/null; then echo writable; else echo readonly; fi > "$OUT/host-ro"
cp "$SRC/src/input" "$OUT/input"
if touch "$SRC/src/new" 2>/dev/null; then echo writable; else echo readonly; fi > "$OUT/src-ro"
test "$OUT" = "$PKG_PATH" && test -d "$PKG_PATH" && echo same > "$OUT/out-is-pkg-path"
touch "$HOME/h" "$TMPDIR/t" "$GOCACHE/c" && echo ok > "$OUT/writable-dirs"
`, map[string]string{"src/input": "source data\n"})
	store := t.TempDir()
	rs, err := r.builder(store, nil, nil).Build(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Name != "base-lib" || rs[1].Name != "app" {
		t.Fatalf("results: %+v", rs)
	}
	app, dep := rs[1], rs[0]
	_, got := readTarball(t, app.Tarball)
	depPath := "/opt/cluster/packages/" + dep.ID
	appPath := "/opt/cluster/packages/" + app.ID
	for file, want := range map[string]string{
		"from-dep":        "hello from base\n",
		"dep-ro":          "readonly\n",
		"host-ro":         "readonly\n",
		"src-ro":          "readonly\n",
		"input":           "source data\n",
		"out-is-pkg-path": "same\n",
		"writable-dirs":   "ok\n",
	} {
		if got[file].data != want {
			t.Errorf("%s = %q, want %q", file, got[file].data, want)
		}
	}
	wantEnv := []string{
		"BASE_LIB_PATH=" + depPath,
		"CGO_ENABLED=0",
		"CLUSTER_PREFIX=/opt/cluster",
		"EXTRA=yes",
		"GOCACHE=/tmp/gocache",
		"GOFLAGS=-mod=mod -trimpath -buildvcs=false",
		"GOMODCACHE=/tmp/gomodcache",
		"GOPROXY=off",
		"GOSUMDB=off",
		"GOTOOLCHAIN=local",
		"HOME=/tmp/home",
		"OUT=" + appPath,
		"PATH=" + DefaultPath(),
		"PKG_ID=" + app.ID,
		"PKG_NAME=app",
		"PKG_PATH=" + appPath,
		"SOURCE_DATE_EPOCH=0",
		"SRC=/tmp/src",
		"TMPDIR=/tmp",
	}
	sort.Strings(wantEnv)
	if env := strings.TrimSpace(got["env.txt"].data); env != strings.Join(wantEnv, "\n") {
		t.Errorf("build environment:\n%s\nwant:\n%s", env, strings.Join(wantEnv, "\n"))
	}
	if app.Metadata.Requires["base-lib"] != dep.ID || app.Metadata.TarballSHA256 != app.SHA256 {
		t.Errorf("metadata: %+v", app.Metadata)
	}
	if _, err := os.Stat(filepath.Join(store, app.ID+".log")); err != nil {
		t.Errorf("build log: %v", err)
	}
}

func TestBuildCacheHitAndCorruption(t *testing.T) {
	requireBwrap(t)
	r := newRepo(t)
	r.pkg("one", `{}`, "mkdir -p $OUT/share; echo 1 > $OUT/share/x\n", nil)
	r.pkg("two", `{"requires": ["one"]}`, "mkdir -p $OUT/share; cp $ONE_PATH/share/x $OUT/share/y\n", nil)
	store := t.TempDir()
	first, err := r.builder(store, nil, nil).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range first {
		if res.Cached {
			t.Errorf("%s cached on the first build", res.Name)
		}
	}
	log := &lockedBuffer{}
	second, err := r.builder(store, log, nil).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range second {
		if !res.Cached || res.ID != first[i].ID || res.SHA256 != first[i].SHA256 {
			t.Errorf("second build of %s: %+v", res.Name, res)
		}
	}
	if n := strings.Count(log.String(), "cache hit"); n != 2 || strings.Contains(log.String(), "msg=building") {
		t.Errorf("log of the cached build:\n%s", log)
	}

	// A corrupted tarball does not verify: it is rebuilt, with a warning.
	one := first[0]
	if err := os.WriteFile(one.Tarball, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	log = &lockedBuffer{}
	third, err := r.builder(store, log, nil).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if third[0].Cached || third[0].SHA256 != one.SHA256 || !third[1].Cached {
		t.Errorf("after corruption: %+v", third)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "does not verify") {
		t.Errorf("no warning logged:\n%s", log)
	}
}

func TestBuildNetwork(t *testing.T) {
	requireBwrap(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	script := `mkdir -p $OUT
if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then echo reachable; else echo unreachable; fi > $OUT/net
`
	tests := []struct {
		name    string
		network string
		want    string
	}{
		{"default", "", "unreachable\n"},
		{"network false", `"network": false,`, "unreachable\n"},
		{"network true", `"network": true,`, "reachable\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.pkg("net", `{`+tc.network+` "environment": {"PORT": "`+port+`"}}`, script, nil)
			rs, err := r.builder(t.TempDir(), nil, nil).Build(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, got := readTarball(t, rs[0].Tarball)
			if got["net"].data != tc.want {
				t.Errorf("127.0.0.1:%s from the sandbox: %q, want %q", port, got["net"].data, tc.want)
			}
		})
	}
}

func TestBuildFailure(t *testing.T) {
	requireBwrap(t)
	r := newRepo(t)
	r.pkg("broken", `{}`, "for i in $(seq 1 30); do echo \"line $i\"; done\nexit 3\n", nil)
	r.pkg("needs-broken", `{"requires": ["broken"]}`, "mkdir -p $OUT\n", nil)
	r.pkg("fine", `{}`, "mkdir -p $OUT\n", nil)
	store := t.TempDir()
	rs, err := r.builder(store, nil, nil).Build(context.Background())
	if err == nil {
		t.Fatal("build succeeded")
	}
	pl, _ := r.builder(store, nil, nil).Plan()
	id := pl.Packages["broken"].ID
	msg := err.Error()
	for _, want := range []string{"building package broken", id, "exit status 3", filepath.Join(store, id+".log"), "line 30\n", "line 12\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "line 5\n") {
		t.Errorf("error carries more than the log's tail:\n%s", msg)
	}
	if strings.Contains(msg, "needs-broken") {
		t.Errorf("error reports the skipped dependent as a failure:\n%s", msg)
	}
	if len(rs) != 1 || rs[0].Name != "fine" {
		t.Errorf("results %+v, want only the independent package", rs)
	}
	log, _ := os.ReadFile(filepath.Join(store, id+".log"))
	if !strings.Contains(string(log), "line 1\n") {
		t.Errorf("log %q lacks the build output", log)
	}
	if _, err := os.Stat(filepath.Join(store, id+".tar.zst")); !os.IsNotExist(err) {
		t.Errorf("failed build left a tarball: %v", err)
	}
}

const layoutScript = `set -eu
umask 022
mkdir -p $OUT/bin $OUT/lib/deep/er $OUT/empty $OUT/private $OUT/share
printf '#!/bin/sh\necho hi\n' > $OUT/bin/tool
chmod 755 $OUT/bin/tool
echo secret > $OUT/private/key; chmod 600 $OUT/private/key; chmod 700 $OUT/private
echo data > $OUT/lib/deep/er/data
ln $OUT/lib/deep/er/data $OUT/share/data-link
ln -s ../lib/deep/er/data $OUT/share/rel
ln -s $PKG_PATH/bin/tool $OUT/share/abs
head -c 100000 /dev/urandom > $OUT/random.bin || true
date +%s%N > $OUT/share/when
`

func TestBuildReproducible(t *testing.T) {
	requireBwrap(t)
	r := newRepo(t)
	// Output that differs between runs (random.bin, when) is removed again, so
	// the same package built twice must give the same bytes.
	r.pkg("layout", `{}`, layoutScript+"rm $OUT/random.bin $OUT/share/when\n", nil)
	var tarballs [][]byte
	var res []Result
	for i := 0; i < 2; i++ {
		rs, err := r.builder(t.TempDir(), nil, func(o *Options) { o.SourceDateEpoch = 1700000000 }).Build(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(rs[0].Tarball)
		if err != nil {
			t.Fatal(err)
		}
		tarballs = append(tarballs, b)
		res = append(res, rs[0])
	}
	if !bytes.Equal(tarballs[0], tarballs[1]) || res[0].SHA256 != res[1].SHA256 {
		t.Fatal("the same package built twice gave different tarballs")
	}
	sum := sha256.Sum256(tarballs[0])
	if hex.EncodeToString(sum[:]) != res[0].SHA256 {
		t.Error("metadata sha256 does not match the tarball")
	}
	names, got := readTarball(t, res[0].Tarball)
	wantNames := []string{"bin", "bin/tool", "empty", "lib", "lib/deep", "lib/deep/er", "lib/deep/er/data", "private", "private/key", "share", "share/abs", "share/data-link", "share/rel"}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Errorf("entries %v, want %v", names, wantNames)
	}
	checks := map[string]archive.Entry{
		"bin/tool":        {Type: archive.TypeFile, Mode: 0o755, Size: 18},
		"private":         {Type: archive.TypeDir, Mode: 0o700},
		"private/key":     {Type: archive.TypeFile, Mode: 0o600, Size: 7},
		"share/data-link": {Type: archive.TypeHardlink, Mode: 0o644, Linkname: "lib/deep/er/data"},
		"share/rel":       {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../lib/deep/er/data"},
		"share/abs":       {Type: archive.TypeSymlink, Mode: 0o777, Linkname: OnHostPath(DefaultPrefix, res[0].ID) + "/bin/tool"},
	}
	for n, w := range checks {
		w.Name = n
		if got[n].e != w {
			t.Errorf("%s: %+v, want %+v", n, got[n].e, w)
		}
	}
	// Raw headers: uid/gid 0, no names, mtime = SOURCE_DATE_EPOCH.
	zr, _ := archive.NewDecompressor(bytes.NewReader(tarballs[0]))
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || hdr.ModTime.Unix() != 1700000000 || !hdr.AccessTime.IsZero() {
			t.Errorf("%s: header %+v", hdr.Name, hdr)
		}
	}
}

func TestBuildRefusesEscapingOutput(t *testing.T) {
	requireBwrap(t)
	tests := []struct {
		name, script, want string
	}{
		{"absolute symlink outside prefix", "mkdir -p $OUT; ln -s /etc/passwd $OUT/evil\n", "evil"},
		{"relative symlink escaping", "mkdir -p $OUT/a; ln -s ../../x $OUT/a/evil\n", "a/evil"},
		{"fifo", "mkdir -p $OUT; mkfifo $OUT/pipe\n", "pipe"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.pkg("bad", `{}`, tc.script, nil)
			_, err := r.builder(t.TempDir(), nil, nil).Build(context.Background())
			if err == nil || !strings.Contains(err.Error(), "package bad") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal naming package bad and %s", err, tc.want)
			}
		})
	}
}

// sourceArchive is a tar.gz with a single top-level directory.
func sourceArchive(t *testing.T) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range []struct {
		name, data string
		typ        byte
	}{{"pkg-1.0/", "", tar.TypeDir}, {"pkg-1.0/hello", "hello from the archive\n", tar.TypeReg}, {"pkg-1.0/sub/x", "x\n", tar.TypeReg}} {
		tw.WriteHeader(&tar.Header{Name: h.name, Typeflag: h.typ, Mode: 0o644, Size: int64(len(h.data))})
		tw.Write([]byte(h.data))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBuildURLSources(t *testing.T) {
	requireBwrap(t)
	plain := []byte("plain file\n")
	arch := sourceArchive(t)
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits[req.URL.Path]++
		switch req.URL.Path {
		case "/dl/plain.txt":
			w.Write(plain)
		case "/dl/src.tar.gz":
			w.Write(arch)
		default:
			http.NotFound(w, req)
		}
	}))
	defer srv.Close()
	local := filepath.Join(t.TempDir(), "local.txt")
	os.WriteFile(local, []byte("local\n"), 0o644)

	r := newRepo(t)
	r.pkg("fetch", `{"sources": {
  "plain": {"kind": "url", "url": "`+srv.URL+`/dl/plain.txt", "sha256": "`+hexSHA(plain)+`"},
  "arch": {"kind": "url_extract", "url": "`+srv.URL+`/dl/src.tar.gz", "sha256": "`+hexSHA(arch)+`"},
  "local": {"kind": "url", "url": "file://`+local+`", "sha256": "`+hexSHA([]byte("local\n"))+`"}
}}`, `set -eu
mkdir -p $OUT
cp $SRC/plain/plain.txt $SRC/arch/hello $SRC/local/local.txt $OUT/
ls $SRC/arch > $OUT/arch-listing
`, nil)
	store := t.TempDir()
	rs, err := r.builder(store, nil, nil).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, got := readTarball(t, rs[0].Tarball)
	for file, want := range map[string]string{"plain.txt": "plain file\n", "hello": "hello from the archive\n", "local.txt": "local\n", "arch-listing": "hello\nsub\n"} {
		if got[file].data != want {
			t.Errorf("%s = %q, want %q", file, got[file].data, want)
		}
	}
	if src := rs[0].Metadata.Sources["arch"]; src.Kind != KindURLExtract || src.Digest != hexSHA(arch) {
		t.Errorf("metadata source: %+v", src)
	}
	// The source cache is content addressed: a rebuild (forced by a new
	// script) fetches nothing.
	r.write(filepath.Join(r.root, "packages/fetch/build"), "mkdir -p $OUT; cp $SRC/plain/plain.txt $OUT/\n", 0o644)
	if _, err := r.builder(store, nil, nil).Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hits["/dl/plain.txt"] != 1 || hits["/dl/src.tar.gz"] != 1 {
		t.Errorf("downloads: %v, want one each", hits)
	}

	t.Run("sha256 mismatch", func(t *testing.T) {
		r := newRepo(t)
		r.pkg("bad", `{"sources": {"plain": {"kind": "url", "url": "`+srv.URL+`/dl/plain.txt", "sha256": "`+okSHA+`"}}}`, "mkdir -p $OUT\n", nil)
		_, err := r.builder(t.TempDir(), nil, nil).Build(context.Background())
		if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") || !strings.Contains(err.Error(), "package bad") || !strings.Contains(err.Error(), srv.URL+"/dl/plain.txt") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := newRepo(t)
		r.pkg("gone", `{"sources": {"x": {"kind": "url", "url": "`+srv.URL+`/nope", "sha256": "`+okSHA+`"}}}`, "mkdir -p $OUT\n", nil)
		_, err := r.builder(t.TempDir(), nil, nil).Build(context.Background())
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestBuildThenBundle goes from package definitions to a bundle.
func TestBuildThenBundle(t *testing.T) {
	requireBwrap(t)
	r := newRepo(t)
	r.pkg("daemon", `{"units": {"daemon.service": ["master", "agent"]}}`, `set -eu
mkdir -p $OUT/bin $OUT/systemd
printf '#!/bin/sh\n' > $OUT/bin/daemon; chmod 755 $OUT/bin/daemon
printf '[Service]\nExecStart=@PREFIX@/bin/daemon\n' | sed "s|@PREFIX@|$CLUSTER_PREFIX|" > $OUT/systemd/daemon.service
`, nil)
	rs, err := r.builder(t.TempDir(), nil, nil).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m, err := bundle.Assemble(&buf, bundle.Input{Prefix: DefaultPrefix, Packages: BundlePackages(rs), ConfigHash: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.Lookup("systemd/daemon.service"); !ok || e.Type != "file" {
		t.Errorf("unit not in bundle: %+v", e)
	}
	if e, ok := m.Lookup("bin/daemon"); !ok || e.Target != "../active/daemon/bin/daemon" {
		t.Errorf("bin/daemon: %+v", e)
	}
	if p, ok := m.Package("daemon"); !ok || p.ID != rs[0].ID || p.TarballSHA256 != rs[0].SHA256 {
		t.Errorf("manifest package: %+v", p)
	}
}
