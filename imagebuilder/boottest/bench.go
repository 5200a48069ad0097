package boottest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"imagebuilder/imagebuilder/qemu"
)

// multiUserRE is systemd's status line for multi-user.target on the
// console: the boot's end for a plain host (the getty's login prompt has no
// newline, so it is no console line).
var multiUserRE = regexp.MustCompile(`Reached target .*Multi-User System`)

// BenchSpec is a boot benchmark: the same base with and without firstboot,
// booted in pairs so both see the same load.
type BenchSpec struct {
	// Plain is the image without the cluster (e.g. cluster.target masked on
	// its kernel command line); Cluster the image with it, booted as one
	// master and one agent.
	Plain, Cluster string
	// Runs is how many times each pair boots (default 3).
	Runs int
	// Timeout bounds each boot (default 5m).
	Timeout time.Duration
	Accel   string // auto (default), kvm or tcg
	Memory  int    // MiB per VM (default 1024)
	Log     *slog.Logger
}

// BenchRun is one run's seconds from QEMU start: plain hosts to
// multi-user.target, cluster hosts to multi-user.target and to their joined
// line.
type BenchRun struct {
	Plain        []float64 `json:"plain_multi_user"`
	MasterBoot   float64   `json:"master_multi_user"`
	AgentBoot    float64   `json:"agent_multi_user"`
	MasterJoined float64   `json:"master_joined"`
	AgentJoined  float64   `json:"agent_joined"`
}

// BenchReport is every run of a benchmark.
type BenchReport struct {
	Accel string     `json:"accel"`
	Runs  []BenchRun `json:"runs"`
}

// Stats are the median, minimum and maximum of some seconds.
type Stats struct{ Median, Min, Max float64 }

func stats(v []float64) Stats {
	if len(v) == 0 {
		return Stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{Median: round(m), Min: s[0], Max: s[len(s)-1]}
}

// Column returns the stats of one measure over the runs: "plain",
// "master boot", "agent boot", "master joined" or "agent joined".
func (r *BenchReport) Column(name string) Stats {
	var v []float64
	for _, run := range r.Runs {
		switch name {
		case "plain":
			v = append(v, run.Plain...)
		case "master boot":
			v = append(v, run.MasterBoot)
		case "agent boot":
			v = append(v, run.AgentBoot)
		case "master joined":
			v = append(v, run.MasterJoined)
		case "agent joined":
			v = append(v, run.AgentJoined)
		}
	}
	return stats(v)
}

// Overhead is what firstboot adds to a plain boot on the master: the
// median of Overheads(false).
func (r *BenchReport) Overhead() float64 { return r.Overheads(false).Median }

// Overheads is what firstboot adds to a plain boot: per run, the master's
// (or, with agent, the agent's) boot-to-joined minus the mean plain boot to
// multi-user.target of the same run (the load of a shared machine drifts
// between runs, less within one), over the runs. The master joins without
// waiting for any other host; an agent's join also waits for its master.
func (r *BenchReport) Overheads(agent bool) Stats {
	var d []float64
	for _, run := range r.Runs {
		if len(run.Plain) == 0 {
			continue
		}
		sum := 0.0
		for _, p := range run.Plain {
			sum += p
		}
		joined := run.MasterJoined
		if agent {
			joined = run.AgentJoined
		}
		d = append(d, joined-sum/float64(len(run.Plain)))
	}
	return stats(d)
}

// AfterBoot is the median, over the runs, of the master's joined line
// minus its own multi-user.target: the join's work once the host booted.
func (r *BenchReport) AfterBoot() float64 {
	var d []float64
	for _, run := range r.Runs {
		d = append(d, run.MasterJoined-run.MasterBoot)
	}
	return stats(d).Median
}

// WriteTable prints the runs' stats side by side.
func (r *BenchReport) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "boot seconds from QEMU start, %d run(s), accel %s\n", len(r.Runs), r.Accel)
	fmt.Fprintf(w, "%-44s %7s %7s %7s\n", "", "median", "min", "max")
	for _, row := range []struct{ label, col string }{
		{"plain (cluster.target masked) multi-user", "plain"},
		{"master multi-user.target", "master boot"},
		{"master joined (etcd member, key in etcd)", "master joined"},
		{"agent multi-user.target", "agent boot"},
		{"agent joined (key in the master's etcd)", "agent joined"},
	} {
		s := r.Column(row.col)
		fmt.Fprintf(w, "%-44s %7.1f %7.1f %7.1f\n", row.label, s.Median, s.Min, s.Max)
	}
	fmt.Fprintf(w, "master joins %.1f s after its own multi-user.target (median of runs)\n", r.AfterBoot())
	fmt.Fprintf(w, "firstboot adds %.1f s (master joined - the same run's plain multi-user, median of runs)\n", r.Overhead())
}

// Bench boots spec.Plain twice at once, then spec.Cluster as a master and
// an agent at once, spec.Runs times, and measures every boot. Both pairs
// get the same VMs (user-mode NIC plus the link between them, with the
// same credentials), so a plain boot differs only by its image.
func Bench(ctx context.Context, spec BenchSpec) (*BenchReport, error) {
	if spec.Plain == "" || spec.Cluster == "" {
		return nil, errors.New("bench: plain and cluster images are required")
	}
	if spec.Runs == 0 {
		spec.Runs = 3
	}
	if spec.Runs < 0 || spec.Runs > 50 {
		return nil, fmt.Errorf("bench: runs %d: want 1 to 50", spec.Runs)
	}
	if spec.Timeout == 0 {
		spec.Timeout = 5 * time.Minute
	}
	if spec.Memory == 0 {
		spec.Memory = 1024
	}
	if spec.Log == nil {
		spec.Log = slog.New(slog.DiscardHandler)
	}
	accel := spec.Accel
	if accel == "" || accel == "auto" {
		accel = "tcg"
		if qemu.ProbeKVM(ctx, qemu.Config{}, 0) == nil {
			accel = "kvm"
		}
	}
	rep := &BenchReport{Accel: accel}
	for i := range spec.Runs {
		var run BenchRun
		// The plain pair runs on the same virtual hardware as the cluster
		// pair (both NICs, the link configured, the same credentials):
		// only cluster.target being masked differs.
		plain, err := benchPair(ctx, spec, accel, spec.Plain, []Node{
			{Name: "plain-1", Role: "master", LinkIP: "192.168.76.11"},
			{Name: "plain-2", Role: "agent", LinkIP: "192.168.76.21"}}, false)
		if err != nil {
			return rep, fmt.Errorf("run %d, plain: %w", i+1, err)
		}
		run.Plain = []float64{plain[0].boot, plain[1].boot}
		cl, err := benchPair(ctx, spec, accel, spec.Cluster, []Node{
			{Name: "master-1", Role: "master", LinkIP: "192.168.76.11"},
			{Name: "agent-1", Role: "agent", LinkIP: "192.168.76.21"}}, true)
		if err != nil {
			return rep, fmt.Errorf("run %d, cluster: %w", i+1, err)
		}
		run.MasterBoot, run.MasterJoined = cl[0].boot, cl[0].joined
		run.AgentBoot, run.AgentJoined = cl[1].boot, cl[1].joined
		spec.Log.Info("bench run", "run", i+1, "plain", run.Plain, "master_joined", run.MasterJoined, "agent_joined", run.AgentJoined)
		rep.Runs = append(rep.Runs, run)
	}
	return rep, nil
}

type benchTimes struct{ boot, joined float64 }

// benchPair boots nodes from disk at once (overlays), linked by a hub when
// they have link addresses, and times multi-user.target and, with join,
// the joined line.
func benchPair(ctx context.Context, spec BenchSpec, accel, disk string, nodes []Node, join bool) ([]benchTimes, error) {
	dir, err := os.MkdirTemp("", "ibbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var hub *qemu.Hub
	if nodes[0].LinkIP != "" {
		if hub, err = qemu.NewHub(spec.Log); err != nil {
			return nil, err
		}
		defer hub.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	out := make([]benchTimes, len(nodes))
	errs := make([]error, len(nodes))
	vms := make([]*qemu.VM, len(nodes))
	// An agent's join needs its master up: kill only when all are done.
	defer func() {
		for _, vm := range vms {
			if vm != nil {
				vm.Kill()
			}
		}
	}()
	var wg sync.WaitGroup
	for i, n := range nodes {
		cfg := qemu.Config{Disk: disk, Snapshot: true, Accel: accel, Memory: spec.Memory, CPUs: 1,
			WorkDir: filepath.Join(dir, n.Name), Log: spec.Log.With("node", n.Name),
			SMBIOSCredentials: credentials(n, i), NICs: []qemu.NIC{{}}}
		if hub != nil {
			cfg.NICs = append(cfg.NICs, hub.NIC(linkMAC(i)))
		}
		wg.Go(func() {
			start := time.Now()
			vm, err := qemu.Start(ctx, cfg)
			if err != nil {
				errs[i] = err
				return
			}
			vms[i] = vm
			con := watchConsole(vm, start)
			fail := func(what string, err error) error {
				return fmt.Errorf("%s: waiting for %s: %w; last console lines:\n%s", n.Name, what, err, con.tail(15))
			}
			_, _, l, err := con.wait(ctx, 0, multiUserRE)
			if err != nil {
				errs[i] = fail("multi-user.target", err)
				return
			}
			out[i].boot = round(l.at.Seconds())
			if !join {
				return
			}
			_, which, l, err := con.wait(ctx, 0, joinedRE, failedRE)
			switch {
			case err != nil:
				errs[i] = fail("the joined line", err)
			case which == 1:
				errs[i] = fmt.Errorf("%s: firstboot failed: %s", n.Name, l.text)
			default:
				out[i].joined = round(l.at.Seconds())
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
