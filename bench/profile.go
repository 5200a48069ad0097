package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"imagebuilder/imagebuilder/build"
)

// profileBuild runs one imagebuilder build in this process — the engine's
// own build.Run, unchanged — under the CPU profiler, then writes a heap
// profile, and prints `go tool pprof -top` of both. The external programs
// the engine runs (mkfs.ext4, debugfs, qemu-img) are not in a Go profile:
// the stage timings printed beside it show their share.
func profileBuild(ctx context.Context, log *slog.Logger, in *inputs, dir, cache string, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := prepare(ctx, log, in, []string{wayCold}, cache); err != nil {
		return err
	}
	out := filepath.Join(in.Work, "out", "profile")
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	cpuPath := filepath.Join(dir, "cpu.pprof")
	f, err := os.Create(cpuPath)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	start := time.Now()
	res, err := build.Run(ctx, log, build.Options{Base: in.Base, Bundle: in.ClusterBundle, OutDir: out, Name: "host"})
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	wall := time.Since(start)
	heapPath := filepath.Join(dir, "heap.pprof")
	h, err := os.Create(heapPath)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := pprof.Lookup("allocs").WriteTo(h, 0); err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(stdout, "in-process build: %.1f s wall; Go heap: %d MiB allocated in total, %d MiB from the OS\n",
		wall.Seconds(), ms.TotalAlloc>>20, ms.Sys>>20)
	for _, s := range res.Stages {
		fmt.Fprintf(stdout, "  stage %-24s %5.2f s\n", s.Name, s.Seconds)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, q := range []struct{ file, index string }{{cpuPath, ""}, {heapPath, "-sample_index=alloc_space"}} {
		args := []string{"tool", "pprof", "-top", "-nodecount=25"}
		if q.index != "" {
			args = append(args, q.index)
		}
		args = append(args, self, q.file)
		top, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof %s: %w\n%s", q.file, err, top)
		}
		txt := q.file + ".top.txt"
		if err := os.WriteFile(txt, top, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n%s (%s):\n%s", q.file, txt, top)
	}
	return nil
}
