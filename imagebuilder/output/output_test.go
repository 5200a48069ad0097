package output

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"imagebuilder/overlay"
)

// testTree stages a small tree with a hardlink whose name sorts before its
// target, a symlink, a device node and an xattr.
func testTree(t *testing.T) *overlay.Tree {
	t.Helper()
	root := t.TempDir()
	tree := overlay.NewTree(root)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tree.MkdirAll("usr/bin", 0o755, 0, 0))
	must(tree.MkdirAll("dev", 0o755, 0, 0))
	must(tree.WriteFile("usr/bin/zz", []byte("payload"), 0o4755, 0, 0))
	must(tree.WriteFile("etc-secret", []byte("s"), 0o600, 7, 8))
	must(tree.Symlink("zz", "usr/bin/link"))
	must(os.Link(filepath.Join(root, "usr/bin/zz"), filepath.Join(root, "usr/bin/aa")))
	tree.Entries["usr/bin/aa"] = &overlay.Entry{Path: "usr/bin/aa", Kind: overlay.KindHardlink, Link: "usr/bin/zz"}
	tree.Entries["usr/bin/zz"].Xattrs = map[string][]byte{"security.capability": {1, 2, 3}}
	tree.Entries["dev/null"] = &overlay.Entry{Path: "dev/null", Kind: overlay.KindCharDev, Mode: 0o666, DevMajor: 1, DevMinor: 3}
	return tree
}

func TestTarIsDeterministicAndExtractable(t *testing.T) {
	tree := testTree(t)
	var a, b bytes.Buffer
	if err := WriteTar(context.Background(), &a, tree, 1700000000); err != nil {
		t.Fatal(err)
	}
	if err := WriteTar(context.Background(), &b, tree, 1700000000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two tars of one tree differ")
	}
	tr := tar.NewReader(bytes.NewReader(a.Bytes()))
	var names []string
	seen := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.ModTime.Unix() != 1700000000 {
			t.Errorf("%s: mtime %v", h.Name, h.ModTime)
		}
		if h.Typeflag == tar.TypeLink && seen[h.Linkname] == nil {
			t.Errorf("%s links to %s before it is in the archive", h.Name, h.Linkname)
		}
		seen[h.Name] = h
		names = append(names, h.Name)
	}
	if strings.Join(names, " ") != "./ dev/ dev/null etc-secret usr/ usr/bin/ usr/bin/aa usr/bin/link usr/bin/zz" {
		t.Errorf("entries: %v", names)
	}
	if h := seen["usr/bin/aa"]; h.Typeflag != tar.TypeReg || h.Size != 7 || h.Mode != 0o4755 || h.PAXRecords["SCHILY.xattr.security.capability"] != "\x01\x02\x03" {
		t.Errorf("first of the hardlink group should carry the file: %+v", h)
	}
	if h := seen["usr/bin/zz"]; h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/aa" {
		t.Errorf("second of the hardlink group: %+v", h)
	}
	if h := seen["dev/null"]; h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("device node: %+v", h)
	}
	if h := seen["etc-secret"]; h.Uid != 7 || h.Gid != 8 || h.Mode != 0o600 || h.Uname != "" {
		t.Errorf("owner/mode from the entry: %+v", h)
	}
}

func TestCpioCarriesTheTree(t *testing.T) {
	tree := testTree(t)
	var a bytes.Buffer
	if err := WriteCpio(context.Background(), &a, tree, 1700000000); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteCpio(context.Background(), &b, tree, 1700000000)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two cpios of one tree differ")
	}
	r := cpio.NewReader(bytes.NewReader(a.Bytes()))
	got := map[string]*cpio.Header{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		if h.Name == "usr/bin/link" && h.Linkname != "zz" {
			t.Errorf("symlink target %q", h.Linkname)
		}
		if h.Name == "usr/bin/aa" && string(data) != "payload" {
			t.Errorf("file content %q", data)
		}
		got[h.Name] = h
	}
	if _, ok := got["dev/null"]; ok {
		t.Errorf("device nodes are left to devtmpfs, not archived")
	}
	aa, zz := got["usr/bin/aa"], got["usr/bin/zz"]
	if aa == nil || zz == nil || aa.Inode != zz.Inode || zz.Size != 0 || aa.Links < 2 {
		t.Errorf("hardlinks share an inode and one body: %+v %+v", aa, zz)
	}
}

func TestBashExportNeedsInstallScript(t *testing.T) {
	dir := t.TempDir()
	bundle := filepath.Join(dir, "cluster-bundle-x.tar.zst")
	os.WriteFile(bundle, []byte("bundle"), 0o644)
	_, err := WriteBashExport(filepath.Join(dir, "out"), bundle)
	if err == nil || !strings.Contains(err.Error(), "no install.sh next to the bundle") {
		t.Fatalf("want a clear error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Errorf("a failed export left its folder behind")
	}
	os.WriteFile(filepath.Join(dir, "install.sh"), []byte("#!/bin/sh\n"), 0o644)
	files, err := WriteBashExport(filepath.Join(dir, "out"), bundle)
	if err != nil || len(files) != 2 {
		t.Fatalf("%v %v", files, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "out", "install.sh")); fi.Mode().Perm() != 0o755 {
		t.Errorf("install.sh mode %v", fi.Mode())
	}
}

// TestOCIImageLayoutAndPush makes the OCI image of a small tree twice
// (identical digests), writes it as a layout and pushes it to an
// in-process registry, then pulls it back by digest.
func TestOCIImageLayoutAndPush(t *testing.T) {
	tree := testTree(t)
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "rootfs.tar")
	if err := WriteTarFile(context.Background(), tarPath, tree, 1700000000); err != nil {
		t.Fatal(err)
	}
	mk := func(layer string) v1.Image {
		img, err := OCIImage(tarPath, filepath.Join(dir, layer), OCIOptions{RefName: "host", Epoch: 1700000000, Labels: map[string]string{"a": "b"}})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	a, b := mk("l1.tar.gz"), mk("l2.tar.gz")
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("two images of one tar differ: %s %s", da, db)
	}
	cf, _ := a.ConfigFile()
	if cf.Created.Unix() != 1700000000 || cf.Architecture != "amd64" || cf.Config.Labels["a"] != "b" {
		t.Errorf("config: %+v", cf)
	}
	out := filepath.Join(dir, "host.oci")
	if err := WriteOCILayout(a, out, "host"); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != da || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "host" {
		t.Fatalf("index: %+v", im)
	}
	fromDisk, err := idx.Image(da)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(fromDisk); err != nil {
		t.Errorf("the layout's image does not validate: %v", err)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/cluster/host:1"
	pushed, err := PushOCI(context.Background(), a, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(pushed, "@"+da.String()) {
		t.Errorf("pushed %s, want the digest %s", pushed, da)
	}
	r, _ := name.ParseReference(pushed)
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != da {
		t.Errorf("pulled %s, pushed %s", d, da)
	}
	if _, err := PushOCI(context.Background(), a, "not a ref!"); err == nil || !strings.Contains(err.Error(), "oci push reference") {
		t.Errorf("bad reference: %v", err)
	}
}
