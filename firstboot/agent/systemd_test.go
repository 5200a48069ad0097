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
