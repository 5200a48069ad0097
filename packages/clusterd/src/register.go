package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// registrar keeps one host registered with masters.
type registrar struct {
	client *http.Client
	self   registration
	// every is the interval between registrations once one succeeded.
	every time.Duration
	// minBackoff and maxBackoff bound the wait after a failed registration.
	minBackoff, maxBackoff time.Duration
	// fastRetry, when positive, is the wait after a failure for the first
	// fastFor of a failure streak, before the doubling backoff: at boot the
	// master is usually seconds from answering, and a 100 ms retry (a
	// refused connection costs nothing) registers within 100 ms of it.
	fastRetry, fastFor time.Duration
	log                *slog.Logger
}

// retryClock times the retries of a registration loop.
type retryClock struct {
	r registrar
	// failingSince is when the current failure streak began (zero while
	// registrations succeed); wait is the next backoff wait.
	failingSince time.Time
	wait         time.Duration
}

// failed returns the wait after a failure at now, and whether that wait
// is worth a warning: the first failure of a streak and every slow retry
// are, the fast retries of a starting cluster are not.
func (c *retryClock) failed(now time.Time) (wait time.Duration, warn bool) {
	first := c.failingSince.IsZero()
	if first {
		c.failingSince, c.wait = now, c.r.minBackoff
	}
	if c.r.fastRetry > 0 && now.Sub(c.failingSince) < c.r.fastFor {
		return c.r.fastRetry, first
	}
	wait = c.wait
	c.wait = min(2*c.wait, c.r.maxBackoff)
	return wait, true
}

// succeeded ends a failure streak.
func (c *retryClock) succeeded() { c.failingSince = time.Time{} }

// run registers with the master at url until ctx ends: after a failure it
// retries (fast at first, then with backoff, forever), after a success it
// registers again every r.every so a master that lost its state learns the
// host again.
func (r registrar) run(ctx context.Context, url string) {
	clock := retryClock{r: r}
	registered := false // whether the last attempt succeeded
	for {
		err := register(ctx, r.client, url, r.self)
		var next time.Duration
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			var warn bool
			if next, warn = clock.failed(time.Now()); warn {
				r.log.Warn("registration failed; retrying", "master", url, "err", err, "retry_in", next)
			}
			registered = false
		default:
			if !registered {
				r.log.Info("registered", "master", url, "ip", r.self.IP, "role", r.self.Role)
			}
			next, registered = r.every, true
			clock.succeeded()
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// register posts one registration.
func register(ctx context.Context, client *http.Client, url string, self registration) error {
	body, err := json.Marshal(self)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// membersURL is the registry URL of the master at ip.
func membersURL(ip, port string) string {
	return "http://" + net.JoinHostPort(ip, port) + "/v1/members"
}
