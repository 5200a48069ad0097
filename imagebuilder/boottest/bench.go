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
// each cluster host booted beside a plain one so both see the same load.
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

// BenchRun is one run's seconds from each VM's QEMU start: the plain
// hosts to multi-user.target (the first booted with the master, the
// second with the agent), the cluster hosts to multi-user.target and to
// their joined line.
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

// Overheads is what firstboot adds to a plain boot: per run, the
// master's (or, with agent, the agent's) boot-to-joined minus the
// multi-user.target of the plain host that booted beside it, over the
// runs. The master joins without waiting for any other host; the agent
// boots while its master is up.
func (r *BenchReport) Overheads(agent bool) Stats {
	var d []float64
	for _, run := range r.Runs {
		i, joined := 0, run.MasterJoined
		if agent {
			i, joined = 1, run.AgentJoined
		}
		if len(run.Plain) <= i {
			continue
		}
		d = append(d, joined-run.Plain[i])
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
	fmt.Fprintf(w, "firstboot adds %.1f s (master joined - multi-user of the plain host booted beside it, median of runs)\n", r.Overhead())
}

// Bench measures, spec.Runs times, what firstboot adds to a plain boot,
// each cluster host against a plain host booted at the same moment on the
// same virtual hardware (user-mode NIC plus the link between them, the
// same credentials), so both see the same load of a shared machine: first
// a master with a plain host, then, while the master stays up, an agent
// with another plain host.
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
		run, err := benchRun(ctx, spec, accel)
		if err != nil {
			return rep, fmt.Errorf("run %d: %w", i+1, err)
		}
		spec.Log.Info("bench run", "run", i+1, "plain", run.Plain, "master_joined", run.MasterJoined, "agent_joined", run.AgentJoined)
		rep.Runs = append(rep.Runs, run)
	}
	return rep, nil
}

// benchRun is one run: master and plain-1 at once, then agent and plain-2
// at once while the master stays up, all on one hub.
func benchRun(ctx context.Context, spec BenchSpec, accel string) (BenchRun, error) {
	var run BenchRun
	s, err := newBenchSession(ctx, spec, accel)
	if err != nil {
		return run, err
	}
	defer s.close()
	first, err := s.boot([]benchNode{
		{Node{Name: "master-1", Role: "master", LinkIP: "192.168.76.11"}, spec.Cluster, true},
		{Node{Name: "plain-1", Role: "master", LinkIP: "192.168.76.12"}, spec.Plain, false}})
	if err != nil {
		return run, err
	}
	second, err := s.boot([]benchNode{
		{Node{Name: "agent-1", Role: "agent", LinkIP: "192.168.76.21"}, spec.Cluster, true},
		{Node{Name: "plain-2", Role: "agent", LinkIP: "192.168.76.22"}, spec.Plain, false}})
	if err != nil {
		return run, err
	}
	run.MasterBoot, run.MasterJoined = first[0].boot, first[0].joined
	run.AgentBoot, run.AgentJoined = second[0].boot, second[0].joined
	run.Plain = []float64{first[1].boot, second[1].boot}
	return run, nil
}

type benchTimes struct{ boot, joined float64 }

// benchNode is a VM of a bench run: a node, its disk and whether to wait
// for its joined line.
type benchNode struct {
	Node
	disk string
	join bool
}

// benchSession holds the VMs of one run (they are killed together: an
// agent's join needs its master up) and the hub that links them.
type benchSession struct {
	ctx    context.Context
	cancel context.CancelFunc
	spec   BenchSpec
	accel  string
	dir    string
	hub    *qemu.Hub
	mu     sync.Mutex
	vms    []*qemu.VM
	nodes  int // nodes started so far: the next one's hub MAC
}

func newBenchSession(ctx context.Context, spec BenchSpec, accel string) (*benchSession, error) {
	dir, err := os.MkdirTemp("", "ibbench-")
	if err != nil {
		return nil, err
	}
	hub, err := qemu.NewHub(spec.Log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*spec.Timeout)
	return &benchSession{ctx: ctx, cancel: cancel, spec: spec, accel: accel, dir: dir, hub: hub}, nil
}

func (s *benchSession) close() {
	s.mu.Lock()
	for _, vm := range s.vms {
		vm.Kill()
	}
	s.mu.Unlock()
	s.hub.Close()
	s.cancel()
	os.RemoveAll(s.dir)
}

// boot starts nodes at once and times each one's multi-user.target and,
// when asked, its joined line, from its QEMU start. The VMs keep running.
func (s *benchSession) boot(nodes []benchNode) ([]benchTimes, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.spec.Timeout)
	defer cancel()
	out := make([]benchTimes, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	first := s.nodes
	s.nodes += len(nodes)
	for i, n := range nodes {
		idx := first + i // a MAC of its own on the hub
		cfg := qemu.Config{Disk: n.disk, Snapshot: true, Accel: s.accel, Memory: s.spec.Memory, CPUs: 1,
			WorkDir: filepath.Join(s.dir, n.Name), Log: s.spec.Log.With("node", n.Name),
			SMBIOSCredentials: credentials(n.Node, idx), NICs: []qemu.NIC{{}, s.hub.NIC(linkMAC(idx))}}
		wg.Go(func() {
			start := time.Now()
			vm, err := qemu.Start(s.ctx, cfg)
			if err != nil {
				errs[i] = err
				return
			}
			s.mu.Lock()
			s.vms = append(s.vms, vm)
			s.mu.Unlock()
			out[i], errs[i] = benchWatch(ctx, vm, start, n)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// benchWatch reads vm's console for node n's multi-user.target and, with
// n.join, its joined line.
func benchWatch(ctx context.Context, vm *qemu.VM, start time.Time, n benchNode) (benchTimes, error) {
	var t benchTimes
	con := watchConsole(vm, start)
	fail := func(what string, err error) error {
		return fmt.Errorf("%s: waiting for %s: %w; last console lines:\n%s", n.Name, what, err, con.tail(15))
	}
	_, _, l, err := con.wait(ctx, 0, multiUserRE)
	if err != nil {
		return t, fail("multi-user.target", err)
	}
	t.boot = round(l.at.Seconds())
	if !n.join {
		return t, nil
	}
	_, which, l, err := con.wait(ctx, 0, joinedRE, failedRE)
	switch {
	case err != nil:
		return t, fail("the joined line", err)
	case which == 1:
		return t, fmt.Errorf("%s: firstboot failed: %s", n.Name, l.text)
	}
	t.joined = round(l.at.Seconds())
	return t, nil
}
