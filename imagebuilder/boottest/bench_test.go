package boottest

import (
	"strings"
	"testing"
)

func TestBenchStatsAndTable(t *testing.T) {
	r := &BenchReport{Accel: "tcg", Runs: []BenchRun{
		{Plain: []float64{20, 22}, MasterBoot: 21, AgentBoot: 21.5, MasterJoined: 23, AgentJoined: 30},
		{Plain: []float64{19, 25}, MasterBoot: 20, AgentBoot: 20.5, MasterJoined: 22.5, AgentJoined: 28},
		{Plain: []float64{21, 30}, MasterBoot: 22, AgentBoot: 22.5, MasterJoined: 24, AgentJoined: 29},
	}}
	if got := r.Column("plain"); got != (Stats{Median: 21.5, Min: 19, Max: 30}) {
		t.Errorf("plain stats %+v", got)
	}
	if got := r.Column("master joined"); got != (Stats{Median: 23, Min: 22.5, Max: 24}) {
		t.Errorf("master joined stats %+v", got)
	}
	// Per run, against the plain host booted beside each: the master
	// 23-20, 22.5-19, 24-21 -> median 3; the agent 30-22, 28-25, 29-30.
	if got := r.Overhead(); got != 3 {
		t.Errorf("overhead %v, want 3", got)
	}
	if got := r.Overheads(true); got != (Stats{Median: 3, Min: -1, Max: 8}) {
		t.Errorf("agent overheads %+v, want median 3, min -1, max 8", got)
	}
	// Per run: 2, 2.5, 2 -> 2.
	if got := r.AfterBoot(); got != 2 {
		t.Errorf("after boot %v, want 2", got)
	}
	var b strings.Builder
	r.WriteTable(&b)
	for _, w := range []string{"3 run(s), accel tcg", "agent joined (key in the master's etcd)         29.0    28.0    30.0", "firstboot adds 3.0 s", "master joins 2.0 s after its own multi-user.target"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, b.String())
		}
	}
}
