package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRegistrarRetriesThenReregisters: a master that fails the first
// requests is retried with backoff; once registered, the host registers
// again every interval.
func TestRegistrarRetriesThenReregisters(t *testing.T) {
	reg, err := OpenRegistry("", fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	inner := newHandler(reg, "demo", testLog(t))
	var calls, okCalls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			http.Error(w, "master starting", http.StatusServiceUnavailable)
			return
		}
		okCalls.Add(1)
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	r := registrar{
		client:     srv.Client(),
		self:       registration{IP: "10.0.2.16", Role: "agent"},
		every:      20 * time.Millisecond,
		minBackoff: 5 * time.Millisecond,
		maxBackoff: 10 * time.Millisecond,
		log:        testLog(t),
	}
	wg.Go(func() { r.run(ctx, srv.URL+"/v1/members") })
	deadline := time.Now().Add(10 * time.Second)
	for okCalls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if okCalls.Load() < 3 {
		t.Fatalf("%d successful registrations (of %d calls), want at least 3 (retry, then re-register)", okCalls.Load(), calls.Load())
	}
	if got := reg.List(); len(got) != 1 || got[0].IP != "10.0.2.16" {
		t.Errorf("registry = %v", got)
	}
}

func TestRegistrarStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r := registrar{
		client:     &http.Client{Timeout: time.Second},
		self:       registration{IP: "10.0.2.16", Role: "agent"},
		every:      time.Hour,
		minBackoff: time.Hour,
		maxBackoff: time.Hour,
		log:        testLog(t),
	}
	// Nothing listens on port 1 of loopback: every attempt fails at once.
	go func() { r.run(ctx, "http://127.0.0.1:1/v1/members"); close(done) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("registrar did not stop after cancel")
	}
}

// TestRetryClock: fast retries for the first fastFor of a failure streak
// (warning only at its first failure), then the doubling backoff; a
// success starts over.
func TestRetryClock(t *testing.T) {
	c := retryClock{r: registrar{fastRetry: 100 * time.Millisecond, fastFor: 30 * time.Second,
		minBackoff: time.Second, maxBackoff: 5 * time.Second}}
	t0 := time.Unix(1000, 0)
	type step struct {
		at   time.Duration
		wait time.Duration
		warn bool
	}
	for i, s := range []step{
		{0, 100 * time.Millisecond, true},
		{time.Second, 100 * time.Millisecond, false},
		{29 * time.Second, 100 * time.Millisecond, false},
		{30 * time.Second, time.Second, true},
		{31 * time.Second, 2 * time.Second, true},
		{33 * time.Second, 4 * time.Second, true},
		{37 * time.Second, 5 * time.Second, true},
		{42 * time.Second, 5 * time.Second, true},
	} {
		wait, warn := c.failed(t0.Add(s.at))
		if wait != s.wait || warn != s.warn {
			t.Errorf("step %d (failure at +%s): wait %s warn %v, want %s %v", i, s.at, wait, warn, s.wait, s.warn)
		}
	}
	c.succeeded()
	if wait, warn := c.failed(t0.Add(time.Hour)); wait != 100*time.Millisecond || !warn {
		t.Errorf("after a success: wait %s warn %v, want a fresh fast streak", wait, warn)
	}
	// Without fast retries (fastRetry 0) the backoff starts at once.
	plain := retryClock{r: registrar{minBackoff: time.Second, maxBackoff: 5 * time.Second}}
	if wait, _ := plain.failed(t0); wait != time.Second {
		t.Errorf("no fast retry: first wait %s, want 1s", wait)
	}
}
