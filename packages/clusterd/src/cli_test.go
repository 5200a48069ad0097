package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestServeAndCheck runs a master and an agent through run() on loopback
// and checks both with "clusterd check", as cluster-join-check does.
func TestServeAndCheck(t *testing.T) {
	port := freePort(t)
	state := t.TempDir()
	masterEnv := envOf(map[string]string{"CLUSTERD_STORE": "registry", "DETECTED_IP": "127.0.0.1", "MASTER_LIST": "127.0.0.1", "CLUSTER_NAME": "demo", "STATE_DIRECTORY": state})
	// The agent reports an address of its own; it needs no listener.
	agentEnv := envOf(map[string]string{"CLUSTERD_STORE": "registry", "DETECTED_IP": "127.0.0.2", "MASTER_LIST": "127.0.0.1"})

	runCheck := func(env func(string) string, role string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"check", "--role", role, "--port", port, "--timeout", "1s"}, env, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := runCheck(masterEnv, "master"); code != 1 {
		t.Fatalf("check before the master runs: exit %d (%s), want 1", code, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	wg.Go(func() {
		codes <- run(ctx, []string{"serve", "--role", "master", "--port", port}, masterEnv, testWriter{t}, testWriter{t})
	})
	wg.Go(func() {
		codes <- run(ctx, []string{"serve", "--role", "agent", "--port", port, "--retry-min", "20ms", "--retry-max", "50ms", "--every", "50ms"},
			agentEnv, testWriter{t}, testWriter{t})
	})
	waitFor := func(env func(string) string, role string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, out := runCheck(env, role)
			if code == 0 {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("check --role %s still failing: %s", role, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if out := waitFor(masterEnv, "master"); !strings.Contains(out, "127.0.0.1 (master) is a member") {
		t.Errorf("master check said %q", out)
	}
	if out := waitFor(agentEnv, "agent"); !strings.Contains(out, "127.0.0.2 (agent) is a member") {
		t.Errorf("agent check said %q", out)
	}
	cancel()
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 0 {
			t.Errorf("serve exited %d after cancel, want 0", c)
		}
	}
	data, err := os.ReadFile(filepath.Join(state, "members.json"))
	if err != nil || !strings.Contains(string(data), `"ip": "127.0.0.2"`) {
		t.Errorf("persisted registry = %s, %v", data, err)
	}
}

func TestRunUsage(t *testing.T) {
	env := envOf(map[string]string{"CLUSTERD_STORE": "registry", "DETECTED_IP": "10.0.2.15"})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no command", args: nil, want: "usage:"},
		{name: "bad role", args: []string{"check", "--role", "boss"}, want: `--role "boss"`},
		{name: "agent without masters", args: []string{"serve", "--role", "agent"}, want: "MASTER_LIST"},
		{name: "bad ip", args: []string{"check", "--role", "master", "--ip", "x"}, want: "not a usable IP"},
		{name: "relative state dir", args: []string{"serve", "--role", "master", "--state-dir", "rel"}, want: "not absolute"},
		{name: "extra args", args: []string{"check", "--role", "master", "x"}, want: "unexpected arguments"},
		{name: "negative wait", args: []string{"check", "--role", "master", "--wait", "-1s"}, want: "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), tc.args, env, &out, &errb); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tc.want)
			}
		})
	}
}

// TestCheckWaitsForMembership: with JOIN_CHECK_WAIT, "clusterd check" keeps
// asking and passes within about 100 ms of the master starting (here 1 s
// after the check), where a single check fails; a bad JOIN_CHECK_WAIT is a
// usage error.
func TestCheckWaitsForMembership(t *testing.T) {
	port := freePort(t)
	env := map[string]string{"CLUSTERD_STORE": "registry", "DETECTED_IP": "127.0.0.1", "MASTER_LIST": "127.0.0.1",
		"CLUSTER_NAME": "demo", "STATE_DIRECTORY": t.TempDir(), "JOIN_CHECK_WAIT": "20"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	started := make(chan time.Time, 1)
	wg.Go(func() {
		time.Sleep(time.Second)
		started <- time.Now()
		run(ctx, []string{"serve", "--role", "master", "--port", port}, envOf(env), testWriter{t}, testWriter{t})
	})
	var out, errb bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"check", "--role", "master", "--port", port, "--timeout", "1s"}, envOf(env), &out, &errb)
	done := time.Now()
	cancel()
	if code != 0 || !strings.Contains(out.String(), "127.0.0.1 (master) is a member") {
		t.Fatalf("waiting check: exit %d, %s%s", code, out.String(), errb.String())
	}
	if d := done.Sub(start); d < time.Second {
		t.Errorf("check passed after %s, before the master started", d)
	}
	if d := done.Sub(<-started); d > 3*time.Second {
		t.Errorf("check passed %s after the master started, want about 100ms", d)
	}

	env["JOIN_CHECK_WAIT"] = "soon"
	errb.Reset()
	if code := run(context.Background(), []string{"check", "--role", "master"}, envOf(env), &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), `JOIN_CHECK_WAIT: "soon" is not a number of seconds`) {
		t.Errorf("bad JOIN_CHECK_WAIT: exit %d, %s", code, errb.String())
	}
}
