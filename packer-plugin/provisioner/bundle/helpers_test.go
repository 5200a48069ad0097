package bundle

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"imagebuilder/pkgbuild/archive"
	"imagebuilder/pkgbuild/bundle"
)

// testBundle assembles a small cluster bundle: one package with a firstboot
// unit for master, a binary, and the config files genconf would bake.
func testBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, m := range []struct {
		name, body string
		mode       int64
		dir        bool
	}{
		{name: "bin/", mode: 0o755, dir: true},
		{name: "bin/fb", body: "#!/bin/sh\necho fb\n", mode: 0o755},
		{name: "systemd/", mode: 0o755, dir: true},
		{name: "systemd/cluster.target", body: "[Unit]\nDescription=Cluster\n", mode: 0o644},
		{name: "systemd/fb.service", body: "[Service]\nExecStart=/opt/cluster/bin/fb\n", mode: 0o644},
	} {
		h := &tar.Header{Name: m.name, Mode: m.mode, Typeflag: tar.TypeReg, Size: int64(len(m.body))}
		if m.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(m.body))
	}
	tw.Close()
	id := "fb--0123456789abcdef0123456789abcdef"
	pkg := filepath.Join(dir, id+".tar.zst")
	var z bytes.Buffer
	zw, err := archive.NewCompressor(&z)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw.Bytes())
	zw.Close()
	if err := os.WriteFile(pkg, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _, _, err := bundle.AssembleFile(dir, bundle.Input{
		Prefix:     "/opt/cluster",
		Packages:   []bundle.Package{{Name: "fb", ID: id, Tarball: pkg, Units: map[string][]string{"fb.service": {"master"}}}},
		Files:      []bundle.File{{Path: "etc/cluster.env", Data: []byte("CLUSTER_NAME=t\n")}},
		ConfigHash: "cfg-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func openTarForTest(r io.Reader) (io.Reader, error) {
	zr, err := archive.NewDecompressor(r)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, zr); err != nil {
		return nil, err
	}
	zr.Close()
	return &buf, nil
}

// rebundleWithoutConfig assembles the same package without configuration
// (what `imagebuilder pkg build` writes, before genconf).
func rebundleWithoutConfig(t *testing.T, _ string) string {
	t.Helper()
	dir := t.TempDir()
	p, _, _, err := bundle.AssembleFile(dir, bundle.Input{Prefix: "/opt/cluster"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
