package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeNetWatch is a NetWatch the test signals by hand.
type fakeNetWatch struct {
	ch     chan struct{}
	closed bool
}

func (f *fakeNetWatch) Changed() <-chan struct{} { return f.ch }
func (f *fakeNetWatch) Close() error             { f.closed = true; return nil }

// TestIPDetectRetriesOnNetworkChange: with a backoff of an hour, only a
// network change can start the second attempt, and it does at once.
func TestIPDetectRetriesOnNetworkChange(t *testing.T) {
	h := newTestHost(t)
	h.agent.IPDetectRetry = Backoff{Min: time.Hour, Max: time.Hour, Total: 10 * time.Hour}
	nw := &fakeNetWatch{ch: make(chan struct{}, 1)}
	h.agent.WatchNet = func() (NetWatch, error) { return nw, nil }
	// The first run "configures the address" (signals a change) and fails;
	// the second succeeds.
	ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"),
		`if [ -e "$0.ran" ]; then echo 10.0.2.15; else touch "$0.ran"; exit 1; fi`)
	h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- h.agent.IPDetect(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	nw.ch <- struct{}{}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("IPDetect: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("IPDetect did not retry on a network change")
	}
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("IPDetect took %s", elapsed)
	}
	if got := h.read(IPEnvFile); got != "DETECTED_IP=10.0.2.15\n" {
		t.Errorf("ip.env = %q", got)
	}
	if !nw.closed {
		t.Error("the network watch was not closed")
	}
}

// TestIPDetectWaitsForNetworkOnline: when the network wait failed, ip-detect
// past its budget keeps retrying while network-online.target is not
// reached, and gives up once it is.
func TestIPDetectWaitsForNetworkOnline(t *testing.T) {
	h := newTestHost(t)
	h.agent.IPDetectRetry = Backoff{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond, Total: 50 * time.Millisecond}
	h.sd.offline = true
	ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), `echo x >> "$0.runs"; exit 1`)
	h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect)
	go func() {
		time.Sleep(500 * time.Millisecond)
		h.sd.mu.Lock()
		h.sd.offline = false
		h.sd.mu.Unlock()
	}()
	start := time.Now()
	err := h.agent.IPDetect(context.Background())
	elapsed := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "gave no usable IP") {
		t.Fatalf("IPDetect = %v, want it to give up", err)
	}
	if elapsed < 500*time.Millisecond {
		t.Errorf("IPDetect gave up after %s, before network-online.target was reached (500ms)", elapsed)
	}
	if elapsed > 10*time.Second {
		t.Errorf("IPDetect gave up only after %s", elapsed)
	}
	h.sd.mu.Lock()
	asked := h.sd.asked
	h.sd.mu.Unlock()
	if len(asked) < 2 || asked[0] != "network-online.target" {
		t.Errorf("asked systemd about %q, want network-online.target more than once", asked)
	}
}

// TestNetlinkWatchOpensAndCloses opens the real rtnetlink watch (an
// unprivileged socket) and closes it while its reader waits.
func TestNetlinkWatchOpensAndCloses(t *testing.T) {
	w, err := WatchNetlink()
	if err != nil {
		t.Fatalf("WatchNetlink: %v", err)
	}
	woken, err := waitRetry(context.Background(), w, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("waitRetry: %v", err)
	}
	_ = woken // a change on the build host may or may not happen
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestWaitRetry(t *testing.T) {
	nw := &fakeNetWatch{ch: make(chan struct{}, 1)}
	nw.ch <- struct{}{}
	start := time.Now()
	woken, err := waitRetry(context.Background(), nw, time.Hour)
	if err != nil || !woken {
		t.Fatalf("waitRetry with a change pending = %v, %v; want woken", woken, err)
	}
	if d := time.Since(start); d < netSettle {
		t.Errorf("woke after %s, want the %s settle time first", d, netSettle)
	}
	woken, err = waitRetry(context.Background(), nil, 10*time.Millisecond)
	if err != nil || woken {
		t.Fatalf("waitRetry without a watch = %v, %v; want the timer", woken, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := waitRetry(ctx, nw, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("waitRetry cancelled = %v", err)
	}
}
