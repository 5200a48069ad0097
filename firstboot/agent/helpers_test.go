package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testHost is a host laid out in temporary directories: root holds /etc,
// /run, /var/lib and /proc; prefix holds bin/ and etc/.
type testHost struct {
	t      *testing.T
	root   string
	prefix string
	stdout *bytes.Buffer
	sd     *fakeSystemd
	agent  *Agent
}

func newTestHost(t *testing.T) *testHost {
	t.Helper()
	h := &testHost{
		t:      t,
		root:   t.TempDir(),
		prefix: t.TempDir(),
		stdout: &bytes.Buffer{},
		sd:     &fakeSystemd{},
	}
	env := map[string]string{}
	h.agent = &Agent{
		Paths:          NewPaths(h.root, h.prefix, ""),
		Stdout:         h.stdout,
		Log:            slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Getenv:         func(k string) string { return env[k] },
		Environ:        func() []string { return []string{"PATH=/usr/bin:/bin"} },
		InterfaceAddrs: fakeAddrs("127.0.0.1/8", "10.0.2.15/24", "fd00::5/64", "::1/128"),
		Interfaces:     fakeLinks("lo", "enp0s1", "enp0s3"),
		Systemd:        h.sd,
		Now:            func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
		IPDetectRetry:  Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond, Total: 150 * time.Millisecond},
		JoinPoll:       20 * time.Millisecond,
	}
	h.setGetenv(env)
	return h
}

func (h *testHost) setGetenv(env map[string]string) {
	h.agent.Getenv = func(k string) string { return env[k] }
}

// write creates a file below root (host path) with the given content.
func (h *testHost) write(hostPath, content string) {
	h.t.Helper()
	writeFile(h.t, h.agent.Paths.Host(hostPath), content, 0o644)
}

// read returns a host file's content, or "<missing>".
func (h *testHost) read(hostPath string) string {
	h.t.Helper()
	b, err := os.ReadFile(h.agent.Paths.Host(hostPath))
	if os.IsNotExist(err) {
		return "<missing>"
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// clusterEnv writes PREFIX/etc/cluster.env from KEY=VALUE lines.
func (h *testHost) clusterEnv(lines ...string) {
	h.t.Helper()
	writeFile(h.t, h.agent.Paths.EnvFile, strings.Join(lines, "\n")+"\n", 0o644)
}

// script writes an executable sh script and returns its path.
func script(t *testing.T, path, body string) string {
	t.Helper()
	writeFile(t, path, "#!/bin/sh\n"+body+"\n", 0o755)
	return path
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// fakeLinks lists links named names with ifindex 1, 2, …; "lo" is a
// loopback.
func fakeLinks(names ...string) func() ([]net.Interface, error) {
	return func() ([]net.Interface, error) {
		var out []net.Interface
		for i, n := range names {
			ifc := net.Interface{Index: i + 1, Name: n, Flags: net.FlagUp}
			if n == "lo" {
				ifc.Flags |= net.FlagLoopback
			}
			out = append(out, ifc)
		}
		return out, nil
	}
}

func fakeAddrs(cidrs ...string) func() ([]net.Addr, error) {
	return func() ([]net.Addr, error) {
		var out []net.Addr
		for _, c := range cidrs {
			ip, n, err := net.ParseCIDR(c)
			if err != nil {
				return nil, err
			}
			n.IP = ip
			out = append(out, n)
		}
		return out, nil
	}
}

type fakeSystemd struct {
	mu      sync.Mutex
	started []string
	err     error
	// offline keeps network-online.target inactive; asked records the
	// units IsActive was asked about.
	offline bool
	asked   []string
	// waited records the units Start waited for.
	waited []string
}

var _ Systemd = (*fakeSystemd)(nil)

func (f *fakeSystemd) StartNoBlock(_ context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.started = append(f.started, unit)
	return nil
}

// Start records a blocking start (the network wait's fallback); with
// offline set, the job fails.
func (f *fakeSystemd) Start(_ context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waited = append(f.waited, unit)
	if f.offline {
		return errors.New("Job for " + unit + " failed.")
	}
	return nil
}

// IsActive answers for network-online.target only: active unless
// offline is set.
func (f *fakeSystemd) IsActive(_ context.Context, unit string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, unit)
	return unit == "network-online.target" && !f.offline, nil
}

func (f *fakeSystemd) units() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.started...)
}

// testWriter sends log output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
