package boottest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"imagebuilder/imagebuilder/qemu"
)

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

	for _, h := range n.spec.HostChecks {
		t0 := time.Now()
		c := Case{Name: HostCheckCase(h.Name)}
		out, err := h.Run(ctx)
		c.Output = out
		if err != nil {
			c.Reason = err.Error()
		} else {
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
