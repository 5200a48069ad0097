package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Sample is what one run of a way cost.
type Sample struct {
	// WallSeconds is the elapsed time of all the way's commands.
	WallSeconds float64 `json:"wall_seconds"`
	// CPUSeconds is user+sys of the commands and every descendant they
	// waited for (wait4's rusage).
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakRSSKiB is the largest maxrss of any single process of the run
	// (the kernel reports the maximum of one process, never a sum).
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// OutputBytes is the size of the qcow2 written.
	OutputBytes int64 `json:"output_bytes"`
}

// step is one command of a way.
type step struct {
	Name string
	Args []string
	Env  []string
}

// stepResult is one command's cost and output.
type stepResult struct {
	Sample
	Stdout, Stderr string
}

// runStep runs s, tees its stderr to log's writer when verbose, and
// measures it through its rusage.
func runStep(ctx context.Context, log *slog.Logger, stderr io.Writer, s step) (stepResult, error) {
	cmd := exec.CommandContext(ctx, s.Args[0], s.Args[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	var out, errBuf bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(&errBuf, stderr)
	// Kill the whole group on cancel: ways start QEMU grandchildren.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	log.Debug("run", "step", s.Name, "cmd", strings.Join(s.Args, " "))
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var r stepResult
	r.Stdout, r.Stderr = out.String(), errBuf.String()
	r.WallSeconds = wall.Seconds()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		r.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		r.PeakRSSKiB = ru.Maxrss
	}
	if err != nil {
		tail := errBuf.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return r, fmt.Errorf("%s: %s: %w\n%s", s.Name, strings.Join(s.Args, " "), err, tail)
	}
	return r, nil
}

func tvSeconds(t syscall.Timeval) float64 {
	return float64(t.Sec) + float64(t.Usec)/1e6
}

// runSteps runs steps in order; wall and CPU add up, peak RSS is the max.
func runSteps(ctx context.Context, log *slog.Logger, stderr io.Writer, steps []step) (Sample, []stepResult, error) {
	var total Sample
	var results []stepResult
	for _, s := range steps {
		r, err := runStep(ctx, log, stderr, s)
		results = append(results, r)
		total.WallSeconds += r.WallSeconds
		total.CPUSeconds += r.CPUSeconds
		total.PeakRSSKiB = max(total.PeakRSSKiB, r.PeakRSSKiB)
		if err != nil {
			return total, results, err
		}
	}
	return total, results, nil
}

// syncOutputs fsyncs the images a way left in dir (host.qcow2, host.raw)
// and the folder, and says how long that took.
func syncOutputs(dir string) (stepResult, error) {
	var r stepResult
	start := time.Now()
	for _, name := range []string{"host.qcow2", "host.raw", ""} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return r, err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return r, fmt.Errorf("fsync %s: %w", f.Name(), err)
		}
	}
	r.WallSeconds = time.Since(start).Seconds()
	return r, nil
}
