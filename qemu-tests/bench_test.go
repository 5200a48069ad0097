package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"imagebuilder/imagebuilder/boottest"
)

// firstbootBudget is the target: firstboot adds under 2 s to a
// plain boot.
const firstbootBudget = 2.0

// BenchmarkBootToJoined (make bench-boot) builds the cluster image of the
// cluster tests twice from one bundle — as is, and with cluster.target
// masked on the kernel command line (the same base and files, nothing of
// ours runs) — and, IMAGEBUILDER_BENCH_RUNS times (default 3), boots a
// master beside a plain host, then, with the master up, an agent beside
// another plain host. It prints the seconds from QEMU start to
// multi-user.target and to the joined line side by side (median, min,
// max), every run, and whether firstboot stays within 2 s of the plain
// host booted beside it for both roles. IMAGEBUILDER_BENCH_OUT, when set,
// receives the report as JSON.
func BenchmarkBootToJoined(b *testing.B) {
	runs := 3
	if v := os.Getenv("IMAGEBUILDER_BENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("IMAGEBUILDER_BENCH_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	cb := clusterBundleConfig(b, clusterConfig, "")
	cluster := buildOrFail(b, cb, "")
	plain := buildOrFail(b, cb, "systemd.mask=cluster.target")
	b.ResetTimer()
	for b.Loop() {
		rep, err := boottest.Bench(context.Background(), boottest.BenchSpec{
			Plain: plain, Cluster: cluster, Runs: runs, Timeout: 6 * time.Minute, Log: testLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		var tbl strings.Builder
		rep.WriteTable(&tbl)
		agent := rep.Overheads(true)
		fmt.Fprintf(&tbl, "the agent's join adds %.1f s (agent joined - multi-user of the plain host booted beside it, median of runs)\n", agent.Median)
		for i, r := range rep.Runs {
			fmt.Fprintf(&tbl, "run %d: plain %v, master multi-user %.1f joined %.1f, agent multi-user %.1f joined %.1f\n",
				i+1, r.Plain, r.MasterBoot, r.MasterJoined, r.AgentBoot, r.AgentJoined)
		}
		met := rep.Overhead() < firstbootBudget && agent.Median < firstbootBudget
		verdict := "target met"
		if !met {
			verdict = "target NOT met"
		}
		b.Logf("\n%s%s: under %.0f s for both roles\n", tbl.String(), verdict, firstbootBudget)
		b.ReportMetric(rep.Column("plain").Median, "plain-s")
		b.ReportMetric(rep.Column("master joined").Median, "master-joined-s")
		b.ReportMetric(rep.Column("agent joined").Median, "agent-joined-s")
		b.ReportMetric(rep.Overhead(), "overhead-s")
		b.ReportMetric(agent.Median, "agent-overhead-s")
		b.ReportMetric(rep.AfterBoot(), "join-after-boot-s")
		if out := os.Getenv("IMAGEBUILDER_BENCH_OUT"); out != "" {
			data, _ := json.MarshalIndent(struct {
				*boottest.BenchReport
				OverheadSeconds      float64 `json:"overhead_seconds"`
				AgentOverheadSeconds float64 `json:"agent_overhead_seconds"`
				AfterBootSeconds     float64 `json:"join_after_boot_seconds"`
				TargetMet            bool    `json:"target_met"`
			}{rep, rep.Overhead(), agent.Median, rep.AfterBoot(), met}, "", "  ")
			if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// buildOrFail builds a qcow2 image of bundle cb with the given extra
// kernel command line.
func buildOrFail(b *testing.B, cb, cmdline string) string {
	b.Helper()
	res, err := buildImageOpts(b, cb, "", cmdline)
	if err != nil {
		b.Fatalf("building the image (cmdline %q): %v", cmdline, err)
	}
	p := artifact(b, res, "qcow2")
	if _, err := os.Stat(p); err != nil || filepath.Ext(p) != ".qcow2" {
		b.Fatalf("image %s: %v", p, err)
	}
	return p
}
