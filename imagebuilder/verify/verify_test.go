package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/imagebuilder/build"
)

// writeRootfs writes a rootfs tar with a cluster payload at opt/cluster
// whose manifest.json lists env (as built) while the tar holds envInTar.
func writeRootfs(t *testing.T, p, envInTar string) {
	t.Helper()
	sum := sha256.Sum256([]byte("CLUSTER_NAME=demo\n"))
	manifest := fmt.Sprintf(`{"version":1,"prefix":"/opt/cluster","config_hash":"cfg1","entries":[
	 {"path":"etc","type":"dir","mode":"0755"},
	 {"path":"etc/cluster.env","type":"file","mode":"0644","size":18,"sha256":"%s"},
	 {"path":"bin/x","type":"symlink","mode":"0777","target":"../etc"},
	 {"path":"bin","type":"dir","mode":"0755"}]}`, hex.EncodeToString(sum[:]))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data string) {
		h.Size = int64(len(data))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	add(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "etc/os-release", Typeflag: tar.TypeReg, Mode: 0o644}, "ID=debian\n")
	add(&tar.Header{Name: "opt/cluster/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "opt/cluster/bin/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "opt/cluster/bin/x", Typeflag: tar.TypeSymlink, Linkname: "../etc"}, "")
	add(&tar.Header{Name: "opt/cluster/etc/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "opt/cluster/etc/cluster.env", Typeflag: tar.TypeReg, Mode: 0o644}, envInTar)
	add(&tar.Header{Name: "opt/cluster/manifest.json", Typeflag: tar.TypeReg, Mode: 0o644}, manifest)
	tw.Close()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyTar(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "host.tar")
	writeRootfs(t, img, "CLUSTER_NAME=demo\n")
	data, _ := os.ReadFile(img)
	sum := sha256.Sum256(data)
	m := build.Result{Name: "host", Prefix: "/opt/cluster", ConfigHash: "cfg1",
		Artifacts: []build.Artifact{{Format: "tar", Path: "host.tar", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}}}
	mj, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, "host.manifest.json"), mj, 0o644)

	reports, err := Image(context.Background(), img, Options{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || reports[0].Drift || len(reports[0].Checks) != 2 {
		t.Fatalf("an untouched tar: %+v", reports)
	}

	writeRootfs(t, img, "CLUSTER_NAME=evil\n")
	reports, err = Image(context.Background(), img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := reports[0]
	text := fmt.Sprint(r.Checks)
	if !r.Drift || !strings.Contains(text, "sha256 false") || !strings.Contains(text, "etc/cluster.env: content changed") || strings.Contains(text, "bin/x") {
		t.Errorf("a tampered tar: %s", text)
	}

	if _, err := Image(context.Background(), filepath.Join(dir, "host.manifest.json"), Options{}); err == nil || !strings.Contains(err.Error(), "not an artifact") && !strings.Contains(err.Error(), "lists it") {
		t.Errorf("a file the manifest does not list: %v", err)
	}
}
