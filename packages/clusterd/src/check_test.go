package main

import (
	"context"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	listing, reg := newMaster(t)
	if _, _, err := reg.Register("10.0.2.16", "agent"); err != nil {
		t.Fatal(err)
	}
	empty, _ := newMaster(t)
	down := "http://127.0.0.1:1/v1/members"
	tests := []struct {
		name    string
		urls    []string
		ip      string
		wantURL string
		wantErr []string
	}{
		{name: "listed", urls: []string{listing.URL + "/v1/members"}, ip: "10.0.2.16", wantURL: listing.URL + "/v1/members"},
		{name: "listed by second master", urls: []string{down, empty.URL + "/v1/members", listing.URL + "/v1/members"},
			ip: "10.0.2.16", wantURL: listing.URL + "/v1/members"},
		{name: "not listed", urls: []string{empty.URL + "/v1/members"}, ip: "10.0.2.16",
			wantErr: []string{"does not list 10.0.2.16 (0 members)"}},
		{name: "master down", urls: []string{down}, ip: "10.0.2.16", wantErr: []string{"127.0.0.1:1"}},
		{name: "no masters", ip: "10.0.2.16", wantErr: []string{"MASTER_LIST is empty"}},
		{name: "bad ip", urls: []string{down}, ip: "x", wantErr: []string{`"x" is not an IP address`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, err := check(context.Background(), listing.Client(), tc.urls, tc.ip)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("check = %q, want error", url)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil || url != tc.wantURL {
				t.Fatalf("check = %q, %v; want %q", url, err, tc.wantURL)
			}
		})
	}
}
