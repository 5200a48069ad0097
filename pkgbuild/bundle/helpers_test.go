package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"imagebuilder/pkgbuild/archive"
)

// pf is one member of a test package tarball.
type pf struct {
	typ  byte
	name string
	data string
	link string
	mode int64
}

func d(name string) pf       { return pf{typ: tar.TypeDir, name: name + "/", mode: 0o755} }
func f(name, data string) pf { return pf{typ: tar.TypeReg, name: name, data: data, mode: 0o644} }
func x(name, data string) pf { return pf{typ: tar.TypeReg, name: name, data: data, mode: 0o755} }
func sl(name, target string) pf {
	return pf{typ: tar.TypeSymlink, name: name, link: target, mode: 0o777}
}
func hl(name, target string) pf { return pf{typ: tar.TypeLink, name: name, link: target, mode: 0o644} }

// writeTarball writes members, in the given order and unvalidated, as a tar.zst
// and returns its path and sha256.
func writeTarball(t *testing.T, dir, file string, members ...pf) (string, string) {
	t.Helper()
	raw := rawTarForFuzz(t, members...)
	var out bytes.Buffer
	zw, err := archive.NewCompressor(&out)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out.Bytes())
	return p, hex.EncodeToString(sum[:])
}

// testPackage writes a sorted, valid package tarball.
func testPackage(t *testing.T, dir, name, hash string, units map[string][]string, members ...pf) Package {
	t.Helper()
	sort.Slice(members, func(i, j int) bool { return trimSlash(members[i].name) < trimSlash(members[j].name) })
	id := name + "--" + hash
	p, sum := writeTarball(t, dir, id+".tar.zst", members...)
	return Package{Name: name, ID: id, Tarball: p, SHA256: sum, Units: units}
}

func trimSlash(s string) string {
	if len(s) > 0 && s[len(s)-1] == '/' {
		return s[:len(s)-1]
	}
	return s
}

// contents lists a bundle: path -> entry, plus file data.
type listed struct {
	e    archive.Entry
	data string
}

func list(t *testing.T, b []byte) ([]string, map[string]listed) {
	t.Helper()
	zr, err := archive.NewDecompressor(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	r := archive.NewReader(zr, archive.Policy{Prefix: "/opt/cluster", Scope: bundleScope})
	var names []string
	m := map[string]listed{}
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
		m[e.Name] = listed{*e, string(data)}
	}
}
