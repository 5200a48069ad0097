package qemutests

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"imagebuilder/imagebuilder/build"
)

// TestBaseLayerCacheGivesSameBytes builds one image from the Debian base
// five ways — cold (the layer is made), warm with only disk formats (the
// base is not staged), warm with a tree format (the base is staged and
// checked against the layer), after the cached layer was corrupted on disk
// (found by its digest, made again), and without the cache — and requires
// the same raw and qcow2 bytes every time.
func TestBaseLayerCacheGivesSameBytes(t *testing.T) {
	cb := clusterBundle(t, "")
	cache := t.TempDir()
	run := func(name string, noCache bool, formats ...string) *build.Result {
		t.Helper()
		res, err := build.Run(context.Background(), testLogger(t), build.Options{
			Base: baseTar(t), Bundle: cb, Role: "agent", OutDir: filepath.Join(t.TempDir(), name), Name: "host",
			Formats: formats, CacheDir: cache, NoCache: noCache,
		})
		if err != nil {
			t.Fatalf("%s build: %v", name, err)
		}
		t.Logf("%s: stages %v", name, res.Stages)
		return res
	}
	stages := func(res *build.Result) []string {
		var s []string
		for _, x := range res.Stages {
			s = append(s, x.Name)
		}
		return s
	}
	sum := func(res *build.Result, format string) string {
		t.Helper()
		for _, a := range res.Artifacts {
			if a.Format == format {
				return a.SHA256
			}
		}
		t.Fatalf("no %s artifact", format)
		return ""
	}

	cold := run("cold", false, "raw", "qcow2")
	if !slices.Contains(stages(cold), "base layer") || !slices.Contains(stages(cold), "stage base") {
		t.Errorf("cold build stages %v: want the base staged and its layer made", stages(cold))
	}
	layers, _ := filepath.Glob(filepath.Join(cache, "layers", "*", "layer.json"))
	if len(layers) != 1 {
		t.Fatalf("layers in the cache after the cold build: %v", layers)
	}
	if digests, _ := filepath.Glob(filepath.Join(cache, "digests", "*.json")); len(digests) == 0 {
		t.Error("no base digest was cached")
	}

	warm := run("warm", false, "raw", "qcow2")
	if slices.Contains(stages(warm), "stage base") || !slices.Contains(stages(warm), "reuse base layer") {
		t.Errorf("warm disk-only build stages %v: want the layer reused and no base staged", stages(warm))
	}
	staged := run("staged", false, "raw", "tar")
	if !slices.Contains(stages(staged), "stage base") {
		t.Errorf("a build with the tar format must stage the base: %v", stages(staged))
	}

	// Corrupt one byte of the layer's image where it holds data.
	img := filepath.Join(filepath.Dir(layers[0]), "root.ext4")
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	off := len(data) / 2
	for off < len(data) && data[off] == 0 {
		off++
	}
	if off == len(data) {
		t.Fatal("the layer image is empty in its second half")
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{^data[off]}, int64(off))
	f.Close()
	repaired := run("repaired", false, "raw", "qcow2")
	fixed, err := os.ReadFile(img)
	if err != nil {
		t.Fatalf("the corrupt layer was not made again: %v", err)
	}
	if !bytes.Equal(fixed, data) {
		t.Error("the layer made again differs from the first one")
	}
	uncached := run("uncached", true, "raw")

	want := sum(cold, "raw")
	for name, res := range map[string]*build.Result{"warm": warm, "staged": staged, "repaired": repaired, "uncached": uncached} {
		if got := sum(res, "raw"); got != want {
			t.Errorf("%s raw %s, cold raw %s", name, got, want)
		}
	}
	for name, res := range map[string]*build.Result{"warm": warm, "repaired": repaired} {
		if got := sum(res, "qcow2"); got != sum(cold, "qcow2") {
			t.Errorf("%s qcow2 differs from the cold build's", name)
		}
	}
}
