package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// joinHost is a test host ready to join: cluster.env, role file, ip.env and
// a join check script with the given body.
func joinHost(t *testing.T, role, check string) *testHost {
	t.Helper()
	h := newTestHost(t)
	h.clusterEnv(`CLUSTER_NAME="demo cluster"`, "MASTER_LIST=10.0.2.15", "JOIN_TIMEOUT=5")
	h.write(RoleFile, role+"\n")
	h.write(IPEnvFile, "DETECTED_IP=10.0.2.15\n")
	script(t, h.agent.Paths.JoinCheck(), `echo "run $1" >> "$0.runs"`+"\n"+check)
	return h
}

func (h *testHost) checkRuns() int {
	b, _ := os.ReadFile(h.agent.Paths.JoinCheck() + ".runs")
	return strings.Count(string(b), "\n")
}

func TestJoinFresh(t *testing.T) {
	tests := []struct {
		name      string
		role      string
		check     string
		minRuns   int
		wantStart []string
	}{
		{name: "check passes at once", role: "master", check: "exit 0", minRuns: 1,
			wantStart: []string{"cluster-master.target"}},
		{name: "check passes on third poll", role: "agent", check: `[ "$(grep -c run "$0.runs")" -ge 3 ]`, minRuns: 3,
			wantStart: []string{"cluster-agent.target"}},
		{name: "agent_public", role: "agent_public", check: "exit 0", minRuns: 1,
			wantStart: []string{"cluster-agent_public.target"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := joinHost(t, tc.role, tc.check)
			if err := h.agent.Join(context.Background()); err != nil {
				t.Fatalf("Join: %v", err)
			}
			if got := h.checkRuns(); got < tc.minRuns {
				t.Errorf("join check ran %d times, want at least %d", got, tc.minRuns)
			}
			if got := h.sd.units(); !reflect.DeepEqual(got, tc.wantStart) {
				t.Errorf("started %v, want %v", got, tc.wantStart)
			}
			wantConsole := "cluster-firstboot: role " + tc.role + " (from /etc/cluster/role)\n" +
				"cluster-firstboot: joined cluster demo cluster as " + tc.role + " with IP 10.0.2.15\n"
			if h.stdout.String() != wantConsole {
				t.Errorf("console =\n%s\nwant\n%s", h.stdout, wantConsole)
			}
			if got := h.read(StateIPFile); got != "10.0.2.15\n" {
				t.Errorf("IP of record = %q", got)
			}
			wantMarker := "IP=10.0.2.15\nROLE=" + tc.role + "\nCLUSTER_NAME=\"demo cluster\"\nJOINED_AT=2025-01-02T03:04:05Z\n"
			if got := h.read(JoinedFile); got != wantMarker {
				t.Errorf("marker = %q, want %q", got, wantMarker)
			}
		})
	}
}

func TestJoinCheckEnvironment(t *testing.T) {
	h := joinHost(t, "master", `printf '%s|%s|%s|%s\n' "$1" "$DETECTED_IP" "$CLUSTER_NAME" "$MASTER_LIST" > "$0.env"`)
	if err := h.agent.Join(context.Background()); err != nil {
		t.Fatalf("Join: %v", err)
	}
	b, err := os.ReadFile(h.agent.Paths.JoinCheck() + ".env")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "master|10.0.2.15|demo cluster|10.0.2.15\n"; got != want {
		t.Errorf("join check saw %q, want %q", got, want)
	}
}

// TestJoinCheckPollsFastThenBacksOff: the join check runs again after
// 100 ms, then at doubling intervals up to the poll (here 2 s), and sees
// how long it may wait inside (JOIN_CHECK_WAIT, seconds).
func TestJoinCheckPollsFastThenBacksOff(t *testing.T) {
	h := joinHost(t, "agent", `date +%s.%N >> "$0.times"; echo "$JOIN_CHECK_WAIT" >> "$0.wait"; [ "$(grep -c run "$0.runs")" -ge 4 ]`)
	h.agent.JoinPoll = 2 * time.Second
	start := time.Now()
	if err := h.agent.Join(context.Background()); err != nil {
		t.Fatalf("Join: %v", err)
	}
	// Waits 100, 200, 400 ms between four runs: about 0.7 s, far less
	// than three 2 s polls.
	if d := time.Since(start); d < 700*time.Millisecond || d > 4*time.Second {
		t.Errorf("four runs of the join check took %s, want about 0.7s", d)
	}
	if got := h.checkRuns(); got != 4 {
		t.Errorf("join check ran %d times, want 4", got)
	}
	// Each run may wait what is left of the 5 s join timeout (under the
	// 30 s cap): 5 s at first, less later.
	b, err := os.ReadFile(h.agent.Paths.JoinCheck() + ".wait")
	waits := strings.Fields(string(b))
	if err != nil || len(waits) != 4 || waits[0] != "5" {
		t.Fatalf("JOIN_CHECK_WAIT of the runs = %q, %v; want 5 first", waits, err)
	}
	for _, w := range waits[1:] {
		if v, err := strconv.ParseFloat(w, 64); err != nil || v >= 5 || v < 3 {
			t.Errorf("JOIN_CHECK_WAIT %q of a later run, want what is left of 5 s", w)
		}
	}
}

func TestJoinFailures(t *testing.T) {
	tests := []struct {
		name    string
		check   string
		timeout string // JOIN_TIMEOUT
		setup   func(h *testHost)
		wantErr []string
		// wantIPRecord: whether /var/lib/cluster/ip must be written.
		wantIPRecord bool
		maxElapsed   time.Duration
	}{
		{name: "check never passes", check: "echo 'not a member yet'; echo 'master unreachable' >&2; exit 1", timeout: "2",
			wantErr: []string{"did not pass within 2s", "/bin/cluster-join-check master", "exit status 1",
				`stdout "not a member yet\n"`, `stderr "master unreachable\n"`},
			wantIPRecord: true, maxElapsed: 6 * time.Second},
		{name: "check hangs", check: "echo waiting; exec sleep 30", timeout: "2",
			wantErr:      []string{"did not pass within 2s", "was killed when the deadline passed", `"waiting\n"`},
			wantIPRecord: true, maxElapsed: 6 * time.Second},
		{name: "check missing", check: "exit 0", timeout: "1",
			setup:   func(h *testHost) { os.Remove(h.agent.Paths.JoinCheck()) },
			wantErr: []string{"did not pass", "could not run"}, wantIPRecord: true, maxElapsed: 6 * time.Second},
		{name: "no ip.env", check: "exit 0",
			setup:   func(h *testHost) { os.Remove(h.agent.Paths.Host(IPEnvFile)) },
			wantErr: []string{"/run/cluster/ip.env is missing", "cluster-ipdetect.service"}},
		{name: "bad ip.env", check: "exit 0",
			setup:   func(h *testHost) { h.write(IPEnvFile, "DETECTED_IP=banana\n") },
			wantErr: []string{`DETECTED_IP "banana" is not an IP address`}},
		{name: "no role", check: "exit 0",
			setup:   func(h *testHost) { os.Remove(h.agent.Paths.Host(RoleFile)) },
			wantErr: []string{"no role for this host"}},
		{name: "no cluster name", check: "exit 0",
			setup:   func(h *testHost) { h.clusterEnv("JOIN_TIMEOUT=1") },
			wantErr: []string{"sets no CLUSTER_NAME"}},
		{name: "systemctl fails", check: "exit 0",
			setup: func(h *testHost) {
				h.sd.err = errors.New("systemctl start --no-block cluster-master.target: unit not found")
			},
			wantErr: []string{"unit not found"}, wantIPRecord: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := joinHost(t, "master", tc.check)
			if tc.timeout != "" {
				h.clusterEnv("CLUSTER_NAME=demo", "JOIN_TIMEOUT="+tc.timeout)
			}
			if tc.setup != nil {
				tc.setup(h)
			}
			start := time.Now()
			err := h.agent.Join(context.Background())
			if tc.maxElapsed > 0 && time.Since(start) > tc.maxElapsed {
				t.Errorf("Join took %s, want under %s", time.Since(start), tc.maxElapsed)
			}
			if err == nil {
				t.Fatal("Join succeeded, want failure")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if got := h.read(JoinedFile); got != "<missing>" {
				t.Errorf("joined marker written on failure: %q", got)
			}
			if got := h.read(StateIPFile) != "<missing>"; got != tc.wantIPRecord {
				t.Errorf("IP of record written = %v, want %v", got, tc.wantIPRecord)
			}
			if strings.Contains(h.stdout.String(), "joined cluster") {
				t.Errorf("console claims a join: %q", h.stdout)
			}
		})
	}
}

func TestJoinAlreadyJoined(t *testing.T) {
	tests := []struct {
		name    string
		ipFile  string
		marker  string
		role    string
		wantErr string
	}{
		{name: "same IP and role", ipFile: "10.0.2.15\n", marker: "IP=10.0.2.15\nROLE=agent\nCLUSTER_NAME=demo\n", role: "agent"},
		{name: "old marker without role", ipFile: "10.0.2.15\n", marker: "IP=10.0.2.15\n", role: "agent"},
		{name: "IP changed", ipFile: "10.0.2.99\n", marker: "IP=10.0.2.99\nROLE=agent\n", role: "agent",
			wantErr: "IP changed after join: was 10.0.2.99, now 10.0.2.15; refusing"},
		{name: "role changed", ipFile: "10.0.2.15\n", marker: "IP=10.0.2.15\nROLE=master\n", role: "agent",
			wantErr: "role changed after join: joined as master, now agent (from /etc/cluster/role); refusing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := joinHost(t, tc.role, "exit 1")
			h.write(StateIPFile, tc.ipFile)
			h.write(JoinedFile, tc.marker)
			err := h.agent.Join(context.Background())
			if h.checkRuns() != 0 {
				t.Errorf("join check ran %d times on a joined host", h.checkRuns())
			}
			if got := h.read(JoinedFile); got != tc.marker {
				t.Errorf("marker changed to %q", got)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Join = %v, want error %q", err, tc.wantErr)
				}
				if len(h.sd.units()) != 0 {
					t.Errorf("started %v although refused", h.sd.units())
				}
				return
			}
			if err != nil {
				t.Fatalf("Join: %v", err)
			}
			if got, want := h.sd.units(), []string{"cluster-" + tc.role + ".target"}; !reflect.DeepEqual(got, want) {
				t.Errorf("started %v, want %v", got, want)
			}
			want := "cluster-firstboot: role agent (from /etc/cluster/role)\n" +
				"cluster-firstboot: already joined cluster demo cluster as agent with IP 10.0.2.15; not joining again\n"
			if h.stdout.String() != want {
				t.Errorf("console =\n%s\nwant\n%s", h.stdout, want)
			}
		})
	}
}

// TestJoinRerun: a join that timed out leaves the host re-runnable; the next
// run (next boot, or a restart of the unit) joins; the one after that sees
// the marker.
func TestJoinRerun(t *testing.T) {
	h := joinHost(t, "agent", "exit 1")
	h.agent.JoinTimeout = 200 * time.Millisecond
	if err := h.agent.Join(context.Background()); err == nil {
		t.Fatal("first Join succeeded with a failing check")
	}
	script(t, h.agent.Paths.JoinCheck(), `echo "run $1" >> "$0.runs"; exit 0`)
	h.stdout.Reset()
	if err := h.agent.Join(context.Background()); err != nil {
		t.Fatalf("second Join: %v", err)
	}
	if !strings.Contains(h.stdout.String(), "cluster-firstboot: joined cluster demo cluster as agent with IP 10.0.2.15\n") {
		t.Errorf("second run console: %q", h.stdout)
	}
	runs := h.checkRuns()
	h.stdout.Reset()
	if err := h.agent.Join(context.Background()); err != nil {
		t.Fatalf("third Join: %v", err)
	}
	if !strings.Contains(h.stdout.String(), "already joined cluster demo cluster as agent with IP 10.0.2.15; not joining again") {
		t.Errorf("third run console: %q", h.stdout)
	}
	if h.checkRuns() != runs {
		t.Errorf("third run ran the join check")
	}
	if got, want := h.sd.units(), []string{"cluster-agent.target", "cluster-agent.target", "cluster-agent.target"}; !reflect.DeepEqual(got, want) {
		t.Errorf("started %v, want %v", got, want)
	}
}

func TestJoinInterrupted(t *testing.T) {
	h := joinHost(t, "agent", "exit 1")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	err := h.agent.Join(ctx)
	if err == nil || !strings.Contains(err.Error(), "join interrupted") {
		t.Fatalf("Join = %v, want interrupted", err)
	}
	if got := h.read(JoinedFile); got != "<missing>" {
		t.Errorf("marker written: %q", got)
	}
}

func TestJoinTimeoutFromEnv(t *testing.T) {
	h := joinHost(t, "agent", "exit 1")
	h.clusterEnv("CLUSTER_NAME=demo", "JOIN_TIMEOUT=1")
	start := time.Now()
	err := h.agent.Join(context.Background())
	if err == nil || !strings.Contains(err.Error(), "within 1s") {
		t.Fatalf("Join = %v, want timeout of 1s", err)
	}
	if el := time.Since(start); el < 900*time.Millisecond || el > 5*time.Second {
		t.Errorf("Join gave up after %s, want about 1s", el)
	}
	if runs := h.checkRuns(); runs < 3 {
		t.Errorf("join check ran %d times in 1s at a 20ms poll, want several", runs)
	}
}

func TestJoinCheckPath(t *testing.T) {
	p := NewPaths("/", "/opt/cluster", "")
	if got := p.JoinCheck(); got != filepath.FromSlash("/opt/cluster/bin/cluster-join-check") {
		t.Errorf("JoinCheck = %q", got)
	}
	if p.EnvFile != "/opt/cluster/etc/cluster.env" {
		t.Errorf("EnvFile = %q", p.EnvFile)
	}
}
