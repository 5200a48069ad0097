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
	log                    *slog.Logger
}

// run registers with the master at url until ctx ends: after a failure it
// retries with backoff (forever), after a success it registers again every
// r.every so a master that lost its state learns the host again.
func (r registrar) run(ctx context.Context, url string) {
	wait := r.minBackoff
	registered := false // whether the last attempt succeeded
	for {
		err := register(ctx, r.client, url, r.self)
		var next time.Duration
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.Warn("registration failed; retrying", "master", url, "err", err, "retry_in", wait)
			next, wait, registered = wait, min(2*wait, r.maxBackoff), false
		default:
			if !registered {
				r.log.Info("registered", "master", url, "ip", r.self.IP, "role", r.self.Role)
			}
			next, wait, registered = r.every, r.minBackoff, true
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
