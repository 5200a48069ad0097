package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func fixedNow() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }

func TestRegistryRegister(t *testing.T) {
	tests := []struct {
		name      string
		ip, role  string
		wantIP    string
		wantError string
	}{
		{name: "ipv4 agent", ip: "10.0.2.15", role: "agent", wantIP: "10.0.2.15"},
		{name: "ipv6 master", ip: "fd00:0::5", role: "master", wantIP: "fd00::5"},
		{name: "mapped ipv4", ip: "::ffff:10.0.2.16", role: "agent_public", wantIP: "10.0.2.16"},
		{name: "bad ip", ip: "host.example", role: "agent", wantError: "invalid member IP"},
		{name: "unspecified ip", ip: "0.0.0.0", role: "agent", wantError: "invalid member IP"},
		{name: "bad role", ip: "10.0.2.15", role: "worker", wantError: "invalid role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := OpenRegistry(filepath.Join(t.TempDir(), "members.json"), fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			m, changed, err := r.Register(tc.ip, tc.role)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("Register = %v, %v; want error %q", m, err, tc.wantError)
				}
				if len(r.List()) != 0 {
					t.Errorf("registry holds %v after a rejected registration", r.List())
				}
				return
			}
			if err != nil || !changed {
				t.Fatalf("Register = %v, %v, %v", m, changed, err)
			}
			want := Member{IP: tc.wantIP, Role: tc.role, LastSeen: fixedNow()}
			if m != want || !reflect.DeepEqual(r.List(), []Member{want}) {
				t.Errorf("Register = %v, List = %v; want %v", m, r.List(), want)
			}
		})
	}
}

func TestRegistryPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "members.json")
	r, err := OpenRegistry(path, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []registration{{"10.0.0.10", "agent"}, {"10.0.0.2", "master"}, {"10.0.0.3", "agent"}} {
		if _, _, err := r.Register(m.IP, m.Role); err != nil {
			t.Fatal(err)
		}
	}
	// Same member again: not a change, so no rewrite needed.
	if _, changed, err := r.Register("10.0.0.3", "agent"); err != nil || changed {
		t.Errorf("re-registration: changed=%v err=%v", changed, err)
	}
	// Role change is a change.
	if _, changed, err := r.Register("10.0.0.3", "agent_public"); err != nil || !changed {
		t.Errorf("role change: changed=%v err=%v", changed, err)
	}
	again, err := OpenRegistry(path, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range again.List() {
		got = append(got, m.IP+"/"+m.Role)
	}
	want := []string{"10.0.0.2/master", "10.0.0.3/agent_public", "10.0.0.10/agent"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reloaded %v, want %v (sorted by address)", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only members.json", len(entries))
	}
}

func TestOpenRegistryErrors(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{name: "not json", content: "nope", want: "parsing registry"},
		{name: "bad member", content: `{"members":[{"ip":"x","role":"agent"}]}`, want: "invalid member IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "members.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenRegistry(path, fixedNow); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenRegistry = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRegistrySaveFailureRollsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	r, err := OpenRegistry(filepath.Join(dir, "members.json"), fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	// A regular file where the state directory should be: saving must fail.
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Register("10.0.0.1", "agent"); err == nil {
		t.Fatal("Register succeeded although the registry cannot be saved")
	}
	if len(r.List()) != 0 {
		t.Errorf("unsaved member kept: %v", r.List())
	}
}
