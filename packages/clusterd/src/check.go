package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// checkPoll is how often a waiting check asks again.
const checkPoll = 100 * time.Millisecond

// checkUntil runs once until it succeeds, every checkPoll for up to wait
// (once when wait is 0), and returns its last answer. A join check that
// waits inside answers within checkPoll of the host becoming a member,
// instead of at the join agent's next run of the check.
func checkUntil(ctx context.Context, wait time.Duration, once func(context.Context) (string, error)) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		found, err := once(ctx)
		if err == nil || ctx.Err() != nil || time.Until(deadline) < checkPoll {
			return found, err
		}
		t := time.NewTimer(checkPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", err
		case <-t.C:
		}
	}
}

// secondsEnv reads a duration given in (decimal) seconds, as cluster.env
// and the join agent's JOIN_CHECK_WAIT write it; empty is 0.
func secondsEnv(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 86400 || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a number of seconds from 0 to 86400", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// check asks each master registry (URLs) whether ip is a member and returns
// the URL of the first that lists it.
func check(ctx context.Context, client *http.Client, urls []string, ip string) (string, error) {
	want, err := netip.ParseAddr(ip)
	if err != nil {
		return "", fmt.Errorf("this host's IP %q is not an IP address", ip)
	}
	if len(urls) == 0 {
		return "", errors.New("no masters to ask (MASTER_LIST is empty)")
	}
	var errs []error
	for _, url := range urls {
		members, err := fetchMembers(ctx, client, url)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range members {
			if a, err := netip.ParseAddr(m.IP); err == nil && a.Unmap() == want.Unmap() {
				return url, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s does not list %s (%d members)", url, ip, len(members)))
	}
	return "", errors.Join(errs...)
}

func fetchMembers(ctx context.Context, client *http.Client, url string) ([]Member, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var body membersResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: decoding members: %w", url, err)
	}
	return body.Members, nil
}
