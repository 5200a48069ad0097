package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemctl(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{name: "ok", body: `echo "$@" > "$0.args"`},
		{name: "fails", body: `echo "$@" > "$0.args"; echo "Unit cluster-master.target not found." >&2; exit 5`,
			wantErr: "systemctl start --no-block cluster-master.target: exit status 5: Unit cluster-master.target not found."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := script(t, filepath.Join(t.TempDir(), "systemctl"), tc.body)
			err := Systemctl{Path: bin}.StartNoBlock(context.Background(), "cluster-master.target")
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("StartNoBlock = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Errorf("StartNoBlock: %v", err)
			}
			args, err := os.ReadFile(bin + ".args")
			if err != nil || strings.TrimSpace(string(args)) != "start --no-block cluster-master.target" {
				t.Errorf("systemctl called with %q, %v", args, err)
			}
		})
	}
}

func TestSystemctlIsActive(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    bool
		wantErr string
	}{
		{name: "active", body: `exit 0`, want: true},
		{name: "inactive", body: `exit 3`, want: false},
		{name: "no systemd", body: `echo "System has not been booted with systemd" >&2; exit 1`,
			wantErr: "systemctl is-active network-online.target: exit status 1: System has not been booted with systemd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := script(t, filepath.Join(t.TempDir(), "systemctl"), `echo "$@" > "$0.args"`+"\n"+tc.body)
			got, err := Systemctl{Path: bin}.IsActive(context.Background(), "network-online.target")
			if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
				t.Errorf("IsActive = %v, %v; want %v, %q", got, err, tc.want, tc.wantErr)
			}
			args, _ := os.ReadFile(bin + ".args")
			if strings.TrimSpace(string(args)) != "is-active --quiet network-online.target" {
				t.Errorf("systemctl called with %q", args)
			}
		})
	}
}

func TestSystemctlStart(t *testing.T) {
	bin := script(t, filepath.Join(t.TempDir(), "systemctl"), `echo "$@" > "$0.args"`)
	if err := (Systemctl{Path: bin}).Start(context.Background(), "network-online.target"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if args, _ := os.ReadFile(bin + ".args"); strings.TrimSpace(string(args)) != "start network-online.target" {
		t.Errorf("systemctl called with %q", args)
	}
	bad := script(t, filepath.Join(t.TempDir(), "systemctl"), `echo "Job failed." >&2; exit 1`)
	err := (Systemctl{Path: bad}).Start(context.Background(), "network-online.target")
	if err == nil || err.Error() != "systemctl start network-online.target: exit status 1: Job failed." {
		t.Errorf("Start with a failing systemctl = %v", err)
	}
}
