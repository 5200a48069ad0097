package agent

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestIPDetectEnqueuesRoleTarget: ip-detect enqueues the role target while
// it runs (its services wait for ip-detect), and a host that has not
// joined gets its IP of record before ip-detect ends; a missing role or a
// role that differs from the joined one enqueues nothing (Join reports it).
func TestIPDetectEnqueuesRoleTarget(t *testing.T) {
	tests := []struct {
		name      string
		role      string // role file; "" for none
		marker    string // joined marker; "" for none
		sdErr     error
		output    string // what ip-detect prints
		wantStart []string
		wantErr   string
		wantIP    string // IP of record afterwards
	}{
		{name: "fresh host", role: "master", output: "10.0.2.15", wantStart: []string{"cluster-master.target"}, wantIP: "10.0.2.15\n"},
		{name: "joined, same role", role: "agent", marker: "IP=10.0.2.15\nROLE=agent\n", output: "10.0.2.15",
			wantStart: []string{"cluster-agent.target"}, wantIP: "<missing>"},
		{name: "joined, role changed", role: "master", marker: "IP=10.0.2.15\nROLE=agent\n", output: "10.0.2.15", wantIP: "<missing>"},
		{name: "no role", output: "10.0.2.15", wantIP: "<missing>"},
		{name: "enqueue fails", role: "master", sdErr: errors.New("systemctl: no systemd"), output: "10.0.2.15", wantIP: "10.0.2.15\n"},
		{name: "ip-detect fails", role: "master", output: "garbage", wantStart: []string{"cluster-master.target"},
			wantErr: "not an IP address", wantIP: "<missing>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t)
			h.sd.err = tc.sdErr
			if tc.role != "" {
				h.write(RoleFile, tc.role+"\n")
			}
			if tc.marker != "" {
				h.write(JoinedFile, tc.marker)
			}
			ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), "echo "+tc.output)
			h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect, "MASTER_LIST=10.0.2.15")
			h.agent.IPDetectRetry.Total = 0
			err := h.agent.IPDetect(context.Background())
			if tc.wantErr == "" && err != nil {
				t.Fatalf("IPDetect: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("IPDetect: %v, want an error saying %q", err, tc.wantErr)
			}
			if got := h.sd.units(); !reflect.DeepEqual(got, tc.wantStart) {
				t.Errorf("enqueued %q, want %q", got, tc.wantStart)
			}
			if got := h.read(StateIPFile); got != tc.wantIP {
				t.Errorf("IP of record = %q, want %q", got, tc.wantIP)
			}
			// The record Join consumes exists only after a successful
			// enqueue and ip-detect.
			wantRecord := "<missing>"
			if tc.wantErr == "" && tc.sdErr == nil && len(tc.wantStart) == 1 {
				wantRecord = tc.wantStart[0] + "\n"
			}
			if got := h.read(EnqueuedFile); got != wantRecord {
				t.Errorf("enqueued record = %q, want %q", got, wantRecord)
			}
		})
	}
}

// TestJoinConsumesEnqueuedTarget: Join does not start the role target that
// ip-detect enqueued this boot, and consumes that record, so a second Join
// (after someone stopped the target) starts it; a record for another
// target is no reason to skip.
func TestJoinConsumesEnqueuedTarget(t *testing.T) {
	h := joinHost(t, "master", "exit 0")
	h.write(EnqueuedFile, "cluster-master.target\n")
	if err := h.agent.Join(context.Background()); err != nil {
		t.Fatalf("Join: %v", err)
	}
	if got := h.sd.units(); len(got) != 0 {
		t.Errorf("Join started %q, want nothing (ip-detect enqueued the target)", got)
	}
	if got := h.read(EnqueuedFile); got != "<missing>" {
		t.Errorf("the record was not consumed: %q", got)
	}
	if err := h.agent.Join(context.Background()); err != nil {
		t.Fatalf("second Join: %v", err)
	}
	if got := h.sd.units(); !reflect.DeepEqual(got, []string{"cluster-master.target"}) {
		t.Errorf("second Join started %q, want the role target", got)
	}

	other := joinHost(t, "agent", "exit 0")
	other.write(EnqueuedFile, "cluster-master.target\n")
	if err := other.agent.Join(context.Background()); err != nil {
		t.Fatalf("Join: %v", err)
	}
	if got := other.sd.units(); !reflect.DeepEqual(got, []string{"cluster-agent.target"}) {
		t.Errorf("Join with a record for another target started %q", got)
	}
}
