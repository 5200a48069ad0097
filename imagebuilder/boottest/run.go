package boottest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"imagebuilder/imagebuilder/qemu"
)

// Console markers firstboot prints (see firstboot/agent/console.go).
var (
	joinedRE   = regexp.MustCompile(`cluster-firstboot: (already )?joined cluster (\S+) as (\S+) with IP ([0-9A-Fa-f.:]+)`)
	failedRE   = regexp.MustCompile(`cluster-firstboot: FAILED: `)
	detectedRE = regexp.MustCompile(`cluster-firstboot: detected IP `)
)

// phaseMarkers end the boot phases, in order.
var phaseMarkers = []struct {
	name string
	re   *regexp.Regexp
}{
	{"firmware", regexp.MustCompile(`Linux version \d|EFI stub: `)},
	{"kernel", regexp.MustCompile(`systemd\[1\]: |Welcome to `)},
	{"userspace", regexp.MustCompile(`cluster-ipdetect|Cluster ip-detect`)},
	{"firstboot", detectedRE},
	{"join", joinedRE},
}

// Case names.
const (
	CaseJoined      = "firstboot joined"
	CaseNoFailed    = "no failed systemd units"
	CaseClusterSide = "join check (cluster side)"
)

// CheckCase is the name of the case of a user check.
func CheckCase(cmd string) string { return "check: " + cmd }

// PowerCutCase is the name of the case of Spec.PowerCutAt.
func PowerCutCase(re string) string { return "power cut at: " + re }

// ExpectCase is the name of the case of an expected console line.
func ExpectCase(re string) string { return "console: " + re }

// node is one running VM under test.
type node struct {
	spec    Node
	rep     *NodeReport
	vm      *qemu.VM
	con     *console
	ch      *channel
	chErr   error
	start   time.Time
	dir     string
	joined  bool
	started chan struct{}
}

// Run boots every node of spec, asserts, and returns the report. The error
// is for a run that could not happen (bad spec, QEMU missing); failed
// assertions are in the report. Every VM is killed before Run returns,
// also when ctx is cancelled.
func Run(ctx context.Context, log *slog.Logger, spec Spec) (*Report, error) {
	if spec.Log == nil {
		spec.Log = log
	}
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("test spec: %w", err)
	}
	log = spec.Log
	for _, n := range spec.Nodes {
		if _, err := os.Stat(n.Disk); err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
	}
	artifacts := spec.ArtifactsDir
	if artifacts == "" {
		if artifacts, err = os.MkdirTemp("", "imagebuilder-test-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(artifacts)
	}
	// Unix socket paths must stay short: the channels live in /tmp.
	sockDir, err := os.MkdirTemp("", "ibt-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(sockDir)

	accel := spec.Accel
	if accel == "auto" {
		accel = "tcg"
		if err := qemu.ProbeKVM(ctx, qemu.Config{}, 0); err != nil {
			log.Info("KVM not usable, using TCG", "reason", err)
		} else {
			accel = "kvm"
		}
	}
	rep := &Report{Image: spec.Image, Accel: accel}

	var hub *qemu.Hub
	linked := false
	for _, n := range spec.Nodes {
		linked = linked || n.LinkIP != ""
	}
	if linked {
		if hub, err = qemu.NewHub(log); err != nil {
			return nil, err
		}
		defer hub.Close()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodes := make([]*node, len(spec.Nodes))
	for i, ns := range spec.Nodes {
		dir := filepath.Join(artifacts, ns.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		n := &node{spec: ns, dir: dir, started: make(chan struct{}),
			rep: &NodeReport{Name: ns.Name, Role: ns.Role, LinkIP: ns.LinkIP, ConsoleLog: filepath.Join(dir, "console.log")}}
		nodes[i] = n
		rep.Nodes = append(rep.Nodes, n.rep)
	}
	defer func() {
		for _, n := range nodes {
			if n.vm != nil {
				if err := n.vm.Kill(); err != nil {
					log.Error("killing VM", "node", n.spec.Name, "err", err)
				}
				// The overlay and firmware variables are not artifacts.
				os.RemoveAll(filepath.Join(n.dir, "vm"))
			}
			if n.ch != nil {
				n.ch.close()
			}
		}
	}()

	ns := func(i int) Node { return spec.Nodes[i] }
	// Boot and wait for firstboot on every node at once: agents wait for
	// their masters, so nodes must run side by side.
	var wg sync.WaitGroup
	var startErr error
	var startMu sync.Mutex
	for i, n := range nodes {
		cfg := qemu.Config{
			Disk: ns(i).Disk, Snapshot: !ns(i).Persistent, Accel: accel, Memory: spec.Memory, CPUs: spec.CPUs,
			WorkDir: filepath.Join(n.dir, "vm"), ConsoleLog: n.rep.ConsoleLog, Log: log.With("node", n.spec.Name),
			SerialPorts:       []qemu.SerialPort{{Name: ChannelName, Socket: filepath.Join(sockDir, fmt.Sprintf("n%d.sock", i))}},
			SMBIOSCredentials: credentials(n.spec, i),
			NICs:              []qemu.NIC{{}},
		}
		if hub != nil {
			cfg.NICs = append(cfg.NICs, hub.NIC(linkMAC(i)))
		}
		wg.Go(func() {
			if err := n.boot(ctx, cfg, spec); err != nil {
				startMu.Lock()
				startErr = errors.Join(startErr, fmt.Errorf("node %s: %w", n.spec.Name, err))
				startMu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	if startErr != nil {
		return nil, startErr
	}
	// The cluster's view needs every node up: ask once all joined or gave up.
	if !spec.NoJoin && spec.PowerCutAt == "" {
		for _, n := range nodes {
			wg.Go(func() { n.clusterSide(ctx, spec, nodes) })
		}
		wg.Wait()
	}
	for _, n := range nodes {
		if spec.PowerCutAt == "" {
			wg.Go(func() { n.finish(ctx, spec) })
		} else if n.con != nil {
			n.rep.Phases = n.phases()
			n.rep.ConsoleTail = n.con.tail(40)
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return rep, fmt.Errorf("test interrupted: %w", context.Cause(ctx))
	}
	if spec.ArtifactsDir != "" {
		f, err := os.Create(filepath.Join(spec.ArtifactsDir, "report.json"))
		if err == nil {
			err = errors.Join(rep.WriteJSON(f), f.Close())
		}
		if err != nil {
			return rep, fmt.Errorf("writing report.json: %w", err)
		}
	}
	return rep, nil
}

// linkMAC is node i's MAC on the link (locally administered, QEMU's OUI).
func linkMAC(i int) string { return fmt.Sprintf("52:54:00:76:00:%02x", i+1) }

// credentials are the SMBIOS credentials of node i: its role, its link
// address (a networkd .network file written by systemd-tmpfiles from the
// tmpfiles.extra credential, before networkd starts) and the extra ones.
func credentials(n Node, i int) map[string]string {
	c := map[string]string{}
	for k, v := range n.Credentials {
		c[k] = v
	}
	if n.Role != "" {
		c["cluster.role"] = n.Role
	}
	if n.LinkIP != "" {
		network := "[Match]\\nMACAddress=" + linkMAC(i) + "\\n\\n[Network]\\nAddress=" + n.LinkIP + "/24\\nLinkLocalAddressing=no\\nIPv6AcceptRA=no\\n"
		c["tmpfiles.extra"] = "f /run/systemd/network/10-imagebuilder-test-link.network 0644 root root - " + network
	}
	return c
}

// boot starts the VM after the node's delay and waits for firstboot's
// verdict and the expected console lines.
func (n *node) boot(ctx context.Context, cfg qemu.Config, spec Spec) error {
	if n.spec.Delay > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(n.spec.Delay):
		}
	}
	os.RemoveAll(cfg.WorkDir)
	n.start = time.Now()
	vm, err := qemu.Start(ctx, cfg)
	if err != nil {
		return err
	}
	n.vm = vm
	n.con = watchConsole(vm, n.start)
	spec.Log.Info("node started", "node", n.spec.Name, "role", n.spec.Role, "link_ip", n.spec.LinkIP, "pid", vm.Pid())

	bootCtx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	if spec.PowerCutAt != "" {
		c := Case{Name: PowerCutCase(spec.PowerCutAt)}
		if _, _, l, err := n.con.wait(bootCtx, 0, regexp.MustCompile(spec.PowerCutAt)); err != nil {
			c.Reason = n.waitFailure(fmt.Sprintf("a console line matching %q", spec.PowerCutAt), err, spec.Timeout)
		} else {
			c.Passed, c.Output = true, l.text
			c.Seconds = round(l.at.Seconds())
			spec.Log.Info("power cut", "node", n.spec.Name, "at", l.text)
		}
		// SIGKILL: no shutdown, no sync.
		if err := vm.Kill(); err != nil {
			return err
		}
		n.rep.Cases = append(n.rep.Cases, c)
		return nil
	}
	chDone := make(chan struct{})
	go func() {
		defer close(chDone)
		ch, err := dialChannel(bootCtx, cfg.SerialPorts[0].Socket)
		if err == nil {
			if err = ch.ready(bootCtx); err != nil {
				ch.close()
			}
		}
		if err != nil {
			n.chErr = err
			return
		}
		n.ch = ch
	}()

	if !spec.NoJoin {
		t0 := time.Now()
		c := Case{Name: CaseJoined}
		_, which, line, err := n.con.wait(bootCtx, 0, joinedRE, failedRE)
		switch {
		case err != nil:
			c.Reason = n.waitFailure("the joined line", err, spec.Timeout)
		case which == 1:
			c.Reason = "firstboot failed: " + strings.TrimSpace(line.text[strings.Index(line.text, "FAILED: ")+len("FAILED: "):])
		default:
			c.Passed = true
			m := joinedRE.FindStringSubmatch(line.text)
			n.joined = true
			n.rep.IP, n.rep.JoinLine = m[4], strings.TrimSpace(line.text[strings.Index(line.text, "cluster-firstboot: "):])
			n.rep.JoinedSeconds = round(line.at.Seconds())
			if n.rep.Role == "" {
				n.rep.Role = m[3]
			}
			c.Output = n.rep.JoinLine
			spec.Log.Info("node joined", "node", n.spec.Name, "ip", n.rep.IP, "seconds", n.rep.JoinedSeconds)
		}
		c.Seconds = round(time.Since(t0).Seconds())
		n.rep.Cases = append(n.rep.Cases, c)
	}
	for _, e := range spec.ExpectConsole {
		t0 := time.Now()
		c := Case{Name: ExpectCase(e)}
		re := regexp.MustCompile(e)
		if l, ok := n.con.find(re); ok {
			c.Passed, c.Output = true, l.text
		} else if spec.NoJoin || n.joined {
			if _, _, l, err := n.con.wait(bootCtx, 0, re); err == nil {
				c.Passed, c.Output = true, l.text
			} else {
				c.Reason = n.waitFailure(fmt.Sprintf("a console line matching %q", e), err, spec.Timeout)
			}
		} else {
			c.Reason = fmt.Sprintf("no console line matches %q (firstboot did not join, so the harness stopped waiting)", e)
		}
		c.Seconds = round(time.Since(t0).Seconds())
		n.rep.Cases = append(n.rep.Cases, c)
	}
	// The channel is needed for what follows; give it the rest of the
	// boot budget.
	<-chDone
	return nil
}

// waitFailure explains why a console wait ended.
func (n *node) waitFailure(what string, err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, errConsoleEnded):
		return fmt.Sprintf("the VM exited before %s: %v", what, n.vm.Wait())
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %s waiting for %s (the boot hangs or is too slow); last console line: %q", timeout, what, lastLine(n.con.tail(1)))
	default:
		return fmt.Sprintf("stopped waiting for %s: %v", what, err)
	}
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func round(s float64) float64 { return float64(int64(s*10+0.5)) / 10 }

// clusterSide runs the role's join check for this node from the cluster's
// side: on the first master node (or, without one, on the node itself),
// with this node's IP, so the answer comes from the cluster (etcd) and not
// from the node's own files. It is retried every 2 s for CheckTimeout.
func (n *node) clusterSide(ctx context.Context, spec Spec, nodes []*node) {
	t0 := time.Now()
	c := Case{Name: CaseClusterSide}
	defer func() {
		c.Seconds = round(time.Since(t0).Seconds())
		n.rep.Cases = append(n.rep.Cases, c)
	}()
	if !n.joined {
		c.Reason = "not checked: firstboot did not join"
		return
	}
	asker := n
	for _, m := range nodes {
		if m.rep.Role == "master" && m.joined && m.ch != nil {
			asker = m
			break
		}
	}
	if asker.ch == nil {
		c.Reason = fmt.Sprintf("cannot run the join check on %s: %v", asker.spec.Name, asker.chErr)
		return
	}
	cmd := fmt.Sprintf("set -a; . %[1]s/etc/cluster.env; DETECTED_IP=%[2]s; set +a; %[1]s/bin/cluster-join-check %[3]s", spec.Prefix, n.rep.IP, n.rep.Role)
	// Poll like firstboot does: after a reboot the host is joined before
	// its cluster services are back.
	var res CmdResult
	var err error
	deadline := time.Now().Add(spec.CheckTimeout)
	for {
		res, err = asker.ch.run(ctx, cmd, spec.CheckTimeout)
		if err != nil || (res.Exit == 0 && res.Error == "") || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
	c.Output = fmt.Sprintf("on %s: %s\n%s", asker.spec.Name, cmd, res.Output)
	switch {
	case err != nil:
		c.Reason = fmt.Sprintf("running the join check on %s: %v", asker.spec.Name, err)
	case res.Exit != 0 || res.Error != "":
		c.Reason = fmt.Sprintf("join check for %s (%s, %s) failed on %s: exit %d %s: %s", n.spec.Name, n.rep.Role, n.rep.IP, asker.spec.Name, res.Exit, res.Error, strings.TrimSpace(res.Output))
	default:
		c.Passed = true
	}
}

// finish runs the unit and user checks, keeps the journal and works out
// the phase timings.
func (n *node) finish(ctx context.Context, spec Spec) {
	run := func(name, cmd string) (CmdResult, string) {
		if n.ch == nil {
			return CmdResult{}, fmt.Sprintf("the test channel of %s does not answer: %v", n.spec.Name, n.chErr)
		}
		res, err := n.ch.run(ctx, cmd, spec.CheckTimeout)
		if err != nil {
			return res, fmt.Sprintf("running %q in %s: %v", cmd, n.spec.Name, err)
		}
		return res, ""
	}

	t0 := time.Now()
	c := Case{Name: CaseNoFailed}
	// Wait (bounded) for the boot's jobs to finish, then list failures.
	res, why := run(CaseNoFailed, "timeout 60 systemctl is-system-running --wait >/dev/null 2>&1; systemctl list-units --failed --plain --no-legend --no-pager --full")
	switch {
	case why != "":
		c.Reason = why
	case res.Exit != 0 || res.Error != "":
		c.Reason = fmt.Sprintf("systemctl list-units --failed: exit %d %s: %s", res.Exit, res.Error, res.Output)
	case strings.TrimSpace(res.Output) != "":
		var units []string
		for _, l := range strings.Split(strings.TrimSpace(res.Output), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				units = append(units, f[0])
			}
		}
		c.Reason = fmt.Sprintf("failed units: %s\n%s", strings.Join(units, " "), res.Output)
		for _, u := range units {
			if j, why := run("", "journalctl --no-pager -o cat -n 15 -u "+shellQuote(u)); why == "" {
				c.Reason += fmt.Sprintf("\n--- journal of %s ---\n%s", u, strings.TrimSpace(j.Output))
			}
		}
	default:
		c.Passed = true
	}
	c.Seconds = round(time.Since(t0).Seconds())
	n.rep.Cases = append(n.rep.Cases, c)

	for _, cmd := range spec.Checks {
		t0 := time.Now()
		c := Case{Name: CheckCase(cmd)}
		res, why := run(c.Name, cmd)
		c.Output = res.Output
		switch {
		case why != "":
			c.Reason = why
		case res.Error != "":
			c.Reason = fmt.Sprintf("%q: %s\n%s", cmd, res.Error, res.Output)
		case res.Exit != 0:
			c.Reason = fmt.Sprintf("%q exited %d\n%s", cmd, res.Exit, res.Output)
		default:
			c.Passed = true
		}
		c.Seconds = round(time.Since(t0).Seconds())
		n.rep.Cases = append(n.rep.Cases, c)
	}

	if n.ch != nil {
		j, why := run("", "journalctl -b --no-pager -o short-monotonic -n 400; echo; echo '--- cluster units ---'; journalctl -b --no-pager -o short-monotonic -u 'cluster-*' -u 'clusterd-*'")
		if why == "" {
			p := filepath.Join(n.dir, "journal.txt")
			if err := os.WriteFile(p, []byte(j.Output), 0o644); err == nil {
				n.rep.Journal = p
			}
		}
	}
	n.rep.Phases = n.phases()
	if n.con != nil {
		n.rep.ConsoleTail = n.con.tail(40)
	}
}

// phases measures the stretches between console markers; a phase whose
// end marker never came is left out.
func (n *node) phases() []Phase {
	if n.con == nil {
		return nil
	}
	var out []Phase
	prev := time.Duration(0)
	for _, m := range phaseMarkers {
		l, ok := n.con.find(m.re)
		if !ok || l.at < prev {
			continue
		}
		out = append(out, Phase{Name: m.name, Seconds: round((l.at - prev).Seconds())})
		prev = l.at
	}
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
