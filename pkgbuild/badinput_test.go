package pkgbuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarGz builds a tar.gz from raw headers (names and links as given, hostile
// or not).
func tarGz(t *testing.T, hdrs ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		data := []byte("data\n")
		if h.Typeflag != tar.TypeReg {
			data = nil
		}
		h.Size = int64(len(data))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// assertNoEntry fails when the store holds anything of package name other
// than its build log.
func assertNoEntry(t *testing.T, store, name string) {
	t.Helper()
	ents, _ := filepath.Glob(filepath.Join(store, name+"--*"))
	for _, e := range ents {
		if !strings.HasSuffix(e, ".log") {
			t.Errorf("store holds %s after a failed build", e)
		}
	}
	trees, _ := filepath.Glob(filepath.Join(store, "trees", name+"--*"))
	if len(trees) != 0 {
		t.Errorf("store holds trees %v", trees)
	}
}

// TestBadInput: each bad input is a clear error naming the package and what
// was wrong, and the store holds no entry for it.
func TestBadInput(t *testing.T) {
	requireBwrap(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()
	dotdot := tarGz(t, tar.Header{Name: "pkg/", Typeflag: tar.TypeDir, Mode: 0o755}, tar.Header{Name: "pkg/../../evil", Typeflag: tar.TypeReg})
	escLink := tarGz(t, tar.Header{Name: "pkg/", Typeflag: tar.TypeDir, Mode: 0o755}, tar.Header{Name: "pkg/link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, tar.Header{Name: "pkg/link/passwd", Typeflag: tar.TypeReg})
	relLink := tarGz(t, tar.Header{Name: "pkg/", Typeflag: tar.TypeDir, Mode: 0o755}, tar.Header{Name: "pkg/up", Typeflag: tar.TypeSymlink, Linkname: "../../.."}, tar.Header{Name: "pkg/up/x", Typeflag: tar.TypeReg})
	files := t.TempDir()
	for name, data := range map[string][]byte{"dotdot.tar.gz": dotdot, "esclink.tar.gz": escLink, "rellink.tar.gz": relLink} {
		os.WriteFile(filepath.Join(files, name), data, 0o644)
	}
	fileSrc := func(file string, data []byte) string {
		return `{"sources": {"s": {"kind": "url_extract", "url": "file://` + filepath.Join(files, file) + `", "sha256": "` + hexSHA(data) + `"}}}`
	}
	tests := []struct {
		name, buildinfo, script string
		wants                   []string
	}{
		{"unreachable source", `{"sources": {"s": {"kind": "url", "url": "http://` + closedAddr + `/src.tar.gz", "sha256": "` + okSHA + `"}}}`, "mkdir -p $OUT\n",
			[]string{"source s", "http://" + closedAddr + "/src.tar.gz", "connection refused"}},
		{"sha256 mismatch", `{"sources": {"s": {"kind": "url", "url": "file://` + filepath.Join(files, "dotdot.tar.gz") + `", "sha256": "` + okSHA + `"}}}`, "mkdir -p $OUT\n",
			[]string{"source s", "sha256 mismatch", "want " + okSHA}},
		{"tarball with ..", fileSrc("dotdot.tar.gz", dotdot), "mkdir -p $OUT\n", []string{"source s", "extracting", "evil"}},
		{"tarball with an escaping absolute link", fileSrc("esclink.tar.gz", escLink), "mkdir -p $OUT\n", []string{"source s", "link"}},
		{"tarball with an escaping relative link", fileSrc("rellink.tar.gz", relLink), "mkdir -p $OUT\n", []string{"source s", "up"}},
		{"write under the prefix outside $PKG_PATH", `{}`, "mkdir -p $OUT\necho x > $CLUSTER_PREFIX/evil\n", []string{"failed", "Read-only file system", "evil"}},
		{"write into another package's path", `{}`, "mkdir -p $OUT\nmkdir $CLUSTER_PREFIX/packages/other\n", []string{"failed", "Read-only file system"}},
		{"write to the host", `{}`, "mkdir -p $OUT\necho x > /etc/pkgbuild-evil\n", []string{"failed", "Read-only file system", "/etc/pkgbuild-evil"}},
		{"build makes the generated sysusers file", `{"username": ["svc"]}`, "mkdir -p $OUT/sysusers.d\necho u x > $OUT/sysusers.d/bad.conf\n",
			[]string{"sysusers.d/bad.conf", "generates", "username"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.pkg("bad", tc.buildinfo, tc.script, nil)
			store := t.TempDir()
			_, err := r.builder(store, nil, nil).Build(context.Background())
			if err == nil {
				t.Fatal("built")
			}
			t.Log(err)
			for _, w := range append([]string{"package bad"}, tc.wants...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			assertNoEntry(t, store, "bad")
			if ents, _ := os.ReadDir(filepath.Join(store, "cache", "sources", "extracted")); len(ents) != 0 {
				for _, e := range ents {
					if !strings.HasPrefix(e.Name(), ".tmp-") {
						t.Errorf("source cache holds extracted/%s", e.Name())
					}
				}
			}
		})
	}
	if _, err := os.Stat("/etc/pkgbuild-evil"); err == nil {
		t.Error("a build wrote /etc/pkgbuild-evil on the host")
	}
}

// TestHostFiles: username and state_directory become sysusers.d and
// tmpfiles.d files in the package.
func TestHostFiles(t *testing.T) {
	requireBwrap(t)
	r := newRepo(t)
	r.pkg("svc", `{"username": ["svc", "svc-helper"], "state_directory": true}`, "mkdir -p $OUT/bin\n", nil)
	r.pkg("stateful", `{"state_directory": true}`, "mkdir -p $OUT\n", nil)
	r.pkg("plain", `{}`, "mkdir -p $OUT\n", nil)
	rs, err := r.builder(t.TempDir(), nil, nil).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"svc": {
			"sysusers.d/svc.conf": "# System users of package svc (buildinfo.json \"username\"), generated by " + BuilderVersion + ".\n" +
				"u svc - \"svc package user\" - -\nu svc-helper - \"svc package user\" - -\n",
			"tmpfiles.d/svc.conf": "# State directory of package svc (buildinfo.json \"state_directory\"), generated by " + BuilderVersion + ".\n" +
				"d /var/lib/svc 0750 svc svc - -\n",
		},
		"stateful": {"tmpfiles.d/stateful.conf": "# State directory of package stateful (buildinfo.json \"state_directory\"), generated by " + BuilderVersion + ".\n" +
			"d /var/lib/stateful 0750 root root - -\n"},
		"plain": {},
	}
	for _, res := range rs {
		names, got := readTarball(t, res.Tarball)
		for file, data := range want[res.Name] {
			if got[file].data != data || got[file].e.Mode != 0o644 {
				t.Errorf("%s: %s = %q (mode %v), want %q", res.Name, file, got[file].data, got[file].e.Mode, data)
			}
		}
		for _, n := range names {
			if (strings.HasPrefix(n, "sysusers.d/") || strings.HasPrefix(n, "tmpfiles.d/")) && want[res.Name][n] == "" {
				t.Errorf("%s holds %s", res.Name, n)
			}
		}
	}
}
