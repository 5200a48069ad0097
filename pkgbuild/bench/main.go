// Command bench measures pkgbuild on the reference package set: a cold build
// (empty store), a no-op rebuild (every package cached), and bundle assembly
// throughput next to `tar -cf - TREE | zstd -T0` of the same tree, in the same
// run. Run it with `make bench-pkgbuild` or
//
//	go run ./pkgbuild/bench -repo . -cache ~/.cache/imagebuilder/store/cache
//
// The cold build shares -cache (fetched sources, Go modules, the Go build
// cache) unless -cold-cache is given, which starts from an empty cache too.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"time"

	"imagebuilder/pkgbuild"
	"imagebuilder/pkgbuild/archive"
	"imagebuilder/pkgbuild/bundle"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	Packages          int     `json:"packages"`
	ColdBuildSeconds  float64 `json:"cold_build_seconds"`
	ColdCache         bool    `json:"cold_cache"`
	NoopSeconds       float64 `json:"noop_rebuild_seconds"`
	TreeBytes         int64   `json:"tree_bytes"`
	BundleBytes       int64   `json:"bundle_bytes"`
	Rounds            int     `json:"rounds"`
	Assemble          timing  `json:"assemble_seconds"`
	AssembleMBps      float64 `json:"assemble_mb_per_s"`
	TarZstd           timing  `json:"tar_zstd_seconds"`
	TarZstdMBps       float64 `json:"tar_zstd_mb_per_s"`
	TarZstdBytes      int64   `json:"tar_zstd_bytes"`
	AssembleVsTarZstd float64 `json:"assemble_speed_ratio"`
	// RoundRatios is tar|zstd time / assembly time of each round.
	RoundRatios timing `json:"round_speed_ratios"`
	// Extend is the cluster bundle made from the bundle (bundle.ExtendFile
	// with two config files), same rounds.
	Extend     timing  `json:"extend_seconds"`
	ExtendMBps float64 `json:"extend_mb_per_s"`
}

// timing is the median, minimum and maximum of the rounds.
type timing struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarize(xs []float64) timing {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	t := timing{Min: s[0], Max: s[len(s)-1]}
	if n := len(s); n%2 == 1 {
		t.Median = s[n/2]
	} else {
		t.Median = (s[n/2-1] + s[n/2]) / 2
	}
	return t
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	repo := fs.String("repo", ".", "repository root")
	cache := fs.String("cache", "", "cache directory (sources, Go modules, Go build cache); default a temp dir")
	coldCache := fs.Bool("cold-cache", false, "cold build from an empty cache too (slow: compiles everything)")
	asJSON := fs.Bool("json", false, "print JSON")
	verbose := fs.Bool("v", false, "log builds")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the first bundle assembly to this file")
	rounds := fs.Int("rounds", 7, "bundle assembly and tar | zstd rounds, interleaved (the medians count)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", *rounds)
	}
	for _, tool := range []string{"bwrap", "tar", "zstd", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install bubblewrap tar zstd; Go 1.26)", tool)
		}
	}
	tmp, err := os.MkdirTemp("", "pkgbuild-bench-")
	if err != nil {
		return err
	}
	defer removeAll(tmp)
	if *cache == "" || *coldCache {
		*cache = filepath.Join(tmp, "cache")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	opts := pkgbuild.Options{
		RepoRoot: *repo,
		StoreDir: filepath.Join(tmp, "store"),
		CacheDir: *cache,
		Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	ctx := context.Background()
	var res result
	res.ColdCache = *coldCache

	b, err := pkgbuild.New(opts)
	if err != nil {
		return err
	}
	start := time.Now()
	rs, err := b.Build(ctx)
	if err != nil {
		return err
	}
	res.ColdBuildSeconds = time.Since(start).Seconds()
	res.Packages = len(rs)

	// No-op: a new builder (nothing in memory), same store, nothing to do.
	start = time.Now()
	b2, err := pkgbuild.New(opts)
	if err != nil {
		return err
	}
	rs2, err := b2.Build(ctx)
	if err != nil {
		return err
	}
	res.NoopSeconds = time.Since(start).Seconds()
	for _, r := range rs2 {
		if !r.Cached {
			return fmt.Errorf("no-op rebuild built %s", r.ID)
		}
	}

	// Bundle assembly and tar | zstd -T0 of the same tree, interleaved; the
	// medians of -rounds count (the machine may be shared).
	in := bundle.Input{Prefix: pkgbuild.DefaultPrefix, Packages: pkgbuild.BundlePackages(rs2)}
	tree := filepath.Join(tmp, "tree")
	zst := filepath.Join(tmp, "tree.tar.zst")
	var asm, tz, ratios, ext []float64
	extra := []bundle.File{{Path: "etc/cluster.env", Data: []byte("CLUSTER_NAME=bench\n")}, {Path: "etc/ip-detect", Mode: 0o755, Data: []byte("#!/bin/sh\necho 10.0.2.15\n")}}
	res.Rounds = *rounds
	for round := 0; round < *rounds; round++ {
		out := filepath.Join(tmp, fmt.Sprintf("out-%d", round))
		if err := os.Mkdir(out, 0o755); err != nil {
			return err
		}
		if *cpuProfile != "" && round == 0 {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		start = time.Now()
		path, _, m, err := bundle.AssembleFile(out, in)
		if err != nil {
			return err
		}
		asm = append(asm, time.Since(start).Seconds())
		start = time.Now()
		if _, _, _, err := bundle.ExtendFile(path, out, extra, "bench"); err != nil {
			return fmt.Errorf("extending the bundle: %w", err)
		}
		ext = append(ext, time.Since(start).Seconds())
		if round == 0 {
			pprof.StopCPUProfile()
			for _, e := range m.Entries {
				res.TreeBytes += e.Size
			}
			if fi, err := os.Stat(path); err == nil {
				res.BundleBytes = fi.Size()
			}
			if err := os.Mkdir(tree, 0o755); err != nil {
				return err
			}
			if err := extract(path, tree); err != nil {
				return err
			}
		}
		os.Remove(zst)
		start = time.Now()
		cmd := exec.Command("bash", "-c", `set -o pipefail; tar -C "$1" -cf - . | zstd -T0 -q -o "$2" && sync "$2"`, "bash", tree, zst)
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("tar | zstd: %v: %s", err, o)
		}
		tz = append(tz, time.Since(start).Seconds())
		ratios = append(ratios, tz[round]/asm[round])
		if round > 0 {
			os.RemoveAll(out) // keep the temp dir small
		}
		if fi, err := os.Stat(zst); err == nil {
			res.TarZstdBytes = fi.Size()
		}
	}
	res.Assemble, res.TarZstd, res.RoundRatios, res.Extend = summarize(asm), summarize(tz), summarize(ratios), summarize(ext)
	mb := float64(res.TreeBytes) / 1e6
	res.AssembleMBps = mb / res.Assemble.Median
	res.TarZstdMBps = mb / res.TarZstd.Median
	res.ExtendMBps = mb / res.Extend.Median
	res.AssembleVsTarZstd = res.AssembleMBps / res.TarZstdMBps

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	cold := "shared warm cache"
	if res.ColdCache {
		cold = "empty cache"
	}
	fmt.Fprintf(stdout, "reference set: %d packages\n", res.Packages)
	fmt.Fprintf(stdout, "cold build (empty store, %s): %.2f s\n", cold, res.ColdBuildSeconds)
	fmt.Fprintf(stdout, "no-op rebuild:                %.3f s\n", res.NoopSeconds)
	fmt.Fprintf(stdout, "%d interleaved rounds, seconds as median (min-max):\n", *rounds)
	fmt.Fprintf(stdout, "bundle assembly:        %.3f s (%.3f-%.3f), %.1f MB tree -> %.1f MB, %.0f MB/s\n", res.Assemble.Median, res.Assemble.Min, res.Assemble.Max, mb, float64(res.BundleBytes)/1e6, res.AssembleMBps)
	fmt.Fprintf(stdout, "tar | zstd -T0 + sync:  %.3f s (%.3f-%.3f), %.1f MB tree -> %.1f MB, %.0f MB/s\n", res.TarZstd.Median, res.TarZstd.Min, res.TarZstd.Max, mb, float64(res.TarZstdBytes)/1e6, res.TarZstdMBps)
	fmt.Fprintf(stdout, "cluster bundle (Extend): %.3f s (%.3f-%.3f), %.0f MB/s\n", res.Extend.Median, res.Extend.Min, res.Extend.Max, res.ExtendMBps)
	fmt.Fprintf(stdout, "assembly / tar|zstd speed: %.2fx (per round: median %.2fx, %.2f-%.2fx)\n", res.AssembleVsTarZstd, res.RoundRatios.Median, res.RoundRatios.Min, res.RoundRatios.Max)
	return nil
}

func extract(file, dest string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := archive.NewDecompressor(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	return archive.Extract(archive.NewReader(zr, archive.Policy{Prefix: pkgbuild.DefaultPrefix}), dest)
}

// removeAll removes dir even where Go's module cache made it read-only.
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}
