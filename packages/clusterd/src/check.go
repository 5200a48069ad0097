package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
)

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
