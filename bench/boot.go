package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// BootResult is whether a way's image booted and its host joined.
type BootResult struct {
	Joined     bool    `json:"joined"`
	Seconds    float64 `json:"seconds"`
	Line       string  `json:"line,omitempty"`
	Error      string  `json:"error,omitempty"`
	ConsoleLog string  `json:"console_log"`
}

// joinedPattern is the firstboot agent's console line once the host joined.
const joinedPattern = "cluster-firstboot: joined cluster"

// bootAll boots each way's image once (snapshot: the image stays as built)
// with the role passed as the SMBIOS credential cluster.role, through
// `imagebuilder boot`, whose QEMU guests use restrict=on user networking.
// At most jobs VMs run at once.
func bootAll(ctx context.Context, log *slog.Logger, in *inputs, ways []string, role string, timeout time.Duration, jobs int) map[string]*BootResult {
	res := map[string]*BootResult{}
	var mu sync.Mutex
	sem := make(chan struct{}, max(jobs, 1))
	var wg sync.WaitGroup
	for _, w := range ways {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := bootOne(ctx, log, in, w, role, timeout)
			mu.Lock()
			res[w] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

func bootOne(ctx context.Context, log *slog.Logger, in *inputs, way, role string, timeout time.Duration) *BootResult {
	console := filepath.Join(in.Work, "boot-"+way+".log")
	r := &BootResult{ConsoleLog: console}
	log.Info("boot", "way", way, "image", in.output(way))
	st, err := runStep(ctx, log, io.Discard, step{Name: "boot " + way, Args: []string{
		in.Bin, "boot", in.output(way), "--snapshot", "--role", role, "--quiet",
		"--until", joinedPattern, "--timeout", timeout.String(), "--console-log", console,
	}})
	r.Seconds = st.WallSeconds
	if err != nil {
		r.Error = firstLine(err.Error())
		log.Warn("boot failed", "way", way, "err", r.Error)
		return r
	}
	r.Joined = true
	for _, l := range strings.Split(st.Stderr, "\n") {
		if _, line, ok := strings.Cut(l, "boot: matched "); ok {
			r.Line = line
		}
	}
	log.Info("joined", "way", way, "seconds", int(r.Seconds))
	return r
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
