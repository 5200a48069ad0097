package genconf

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/pkgbuild/bundle"
)

func TestGenerateDeterministicAndChecksPrefix(t *testing.T) {
	dir := t.TempDir()
	base, _, _, err := bundle.AssembleFile(dir, bundle.Input{Prefix: "/opt/cluster"})
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	os.WriteFile(filepath.Join(cfgDir, "ip-detect"), []byte("#!/bin/sh\necho 10.0.0.1\n"), 0o755)
	write := func(prefix string) *Resolved {
		os.WriteFile(filepath.Join(cfgDir, "config.yaml"), []byte("cluster_name: c1\nmaster_list: [10.0.0.1]\nprefix: "+prefix+"\n"), 0o644)
		r, err := Load(filepath.Join(cfgDir, "config.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	log := slog.New(slog.DiscardHandler)
	cfg := write("/opt/cluster")
	a, err := Generate(log, cfg, base, filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(log, cfg, base, filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	if a.BundleSHA256 != b.BundleSHA256 || filepath.Base(a.Bundle) != filepath.Base(b.Bundle) {
		t.Errorf("same config and bundle gave %s and %s", a.BundleSHA256, b.BundleSHA256)
	}
	f, _ := os.Open(a.Bundle)
	m, err := bundle.ReadManifest(f)
	f.Close()
	if err != nil || m.ConfigHash != a.ConfigHash {
		t.Errorf("manifest config hash %v %v, want %s", m, err, a.ConfigHash)
	}
	if _, ok := m.Lookup("etc/ip-detect"); !ok {
		t.Errorf("etc/ip-detect missing from the cluster bundle")
	}
	sums, _ := os.ReadFile(a.SHA256Sums)
	if !bytes.Contains(sums, []byte(a.BundleSHA256+"  "+filepath.Base(a.Bundle))) {
		t.Errorf("SHA256SUMS = %q", sums)
	}
	out := filepath.Join(t.TempDir(), "c")
	_, err = Generate(log, write("/srv/cluster"), base, out)
	if err == nil || !strings.Contains(err.Error(), `config says "/srv/cluster" but bundle`) {
		t.Fatalf("prefix mismatch: %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("files left after a failed genconf: %v", ents)
	}
}
