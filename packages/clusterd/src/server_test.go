package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newMaster starts a registry server on 127.0.0.1.
func newMaster(t *testing.T) (*httptest.Server, *Registry) {
	t.Helper()
	reg, err := OpenRegistry("", fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(reg, "demo", testLog(t)))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server on %s, want 127.0.0.1", srv.URL)
	}
	return srv, reg
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		body       string
		wantCode   int
		wantInBody string
	}{
		{name: "list empty", method: "GET", wantCode: 200, wantInBody: `{"cluster":"demo","members":[]}`},
		{name: "register", method: "POST", body: `{"ip":"10.0.2.15","role":"agent"}`, wantCode: 200,
			wantInBody: `"ip":"10.0.2.15","role":"agent"`},
		{name: "bad json", method: "POST", body: `{"ip":`, wantCode: 400, wantInBody: "decoding registration"},
		{name: "unknown field", method: "POST", body: `{"ip":"10.0.2.15","role":"agent","x":1}`, wantCode: 400,
			wantInBody: "unknown field"},
		{name: "bad ip", method: "POST", body: `{"ip":"nope","role":"agent"}`, wantCode: 400, wantInBody: "invalid member IP"},
		{name: "bad role", method: "POST", body: `{"ip":"10.0.2.15","role":"boss"}`, wantCode: 400, wantInBody: "invalid role"},
		{name: "too big", method: "POST", body: `{"ip":"` + strings.Repeat("1", 5000) + `"}`, wantCode: 400},
		{name: "wrong method", method: "DELETE", wantCode: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newMaster(t)
			req, err := http.NewRequest(tc.method, srv.URL+"/v1/members", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(body), tc.wantInBody) {
				t.Errorf("%s = %d %s, want %d containing %q", tc.method, resp.StatusCode, body, tc.wantCode, tc.wantInBody)
			}
		})
	}
}

func TestRegisterThenList(t *testing.T) {
	srv, _ := newMaster(t)
	ctx := context.Background()
	url := srv.URL + "/v1/members"
	for _, r := range []registration{{"10.0.2.16", "agent"}, {"10.0.2.15", "master"}, {"10.0.2.16", "agent"}} {
		if err := register(ctx, srv.Client(), url, r); err != nil {
			t.Fatal(err)
		}
	}
	members, err := fetchMembers(ctx, srv.Client(), url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(members)
	want := `[{"ip":"10.0.2.15","role":"master","last_seen":"2025-01-02T03:04:05Z"},{"ip":"10.0.2.16","role":"agent","last_seen":"2025-01-02T03:04:05Z"}]`
	if string(b) != want {
		t.Errorf("members = %s, want %s", b, want)
	}
}
