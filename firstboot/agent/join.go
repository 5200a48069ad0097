package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Join brings the host into the cluster, or confirms it is in already.
// On every boot it resolves the role and reads the detected IP. A host that
// has the joined marker starts its role target and stops there. Otherwise
// it records the IP, starts cluster-<role>.target, polls the join check
// until it passes or the join timeout ends, and only then writes the
// marker. Each step is safe to repeat after a crash or a reboot.
func (a *Agent) Join(ctx context.Context) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if cfg.name == "" {
		return fmt.Errorf("%s sets no CLUSTER_NAME", a.Paths.EnvFile)
	}
	role, from, err := a.ResolveRole()
	if err != nil {
		return err
	}
	printRole(a.Stdout, role, from)
	ip, err := a.detectedIP()
	if err != nil {
		return err
	}
	target := "cluster-" + role + ".target"

	marker, joined, err := a.readMarker()
	if err != nil {
		return err
	}
	if joined {
		if err := a.checkIPOfRecord(ip); err != nil {
			return err
		}
		if was := marker.Values["ROLE"]; was != "" && was != role {
			return fmt.Errorf("role changed after join: joined as %s, now %s (from %s); refusing", was, role, from)
		}
		if err := a.startRoleTarget(ctx, target); err != nil {
			return err
		}
		a.Log.Info("already joined; started role target", "target", target, "joined", marker.Values["JOINED_AT"])
		printAlreadyJoined(a.Stdout, cfg.name, role, ip.String())
		return nil
	}

	if err := WriteFileAtomic(a.Paths.Host(StateIPFile), []byte(ip.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("recording IP of record: %w", err)
	}
	if err := a.startRoleTarget(ctx, target); err != nil {
		return err
	}
	a.Log.Info("started role target", "target", target)
	if err := a.waitJoinCheck(ctx, cfg, role, ip); err != nil {
		return err
	}
	content, err := FormatEnv(
		[2]string{"IP", ip.String()},
		[2]string{"ROLE", role},
		[2]string{"CLUSTER_NAME", cfg.name},
		[2]string{"JOINED_AT", a.Now().UTC().Format(time.RFC3339)},
	)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(a.Paths.Host(JoinedFile), []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing joined marker: %w", err)
	}
	printJoined(a.Stdout, cfg.name, role, ip.String())
	return nil
}

// detectedIP reads DETECTED_IP from /run/cluster/ip.env.
func (a *Agent) detectedIP() (netip.Addr, error) {
	env, err := ReadEnvFile(a.Paths.Host(IPEnvFile))
	if errors.Is(err, fs.ErrNotExist) {
		return netip.Addr{}, fmt.Errorf("%s is missing: cluster-ipdetect.service (cluster-firstboot ipdetect) has not succeeded this boot", IPEnvFile)
	}
	if err != nil {
		return netip.Addr{}, err
	}
	v, _ := env.Get("DETECTED_IP")
	ip, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: DETECTED_IP %q is not an IP address", IPEnvFile, v)
	}
	return ip.Unmap(), nil
}

// readMarker reads the joined marker; joined is false when it is absent.
func (a *Agent) readMarker() (marker Env, joined bool, err error) {
	marker, err = ReadEnvFile(a.Paths.Host(JoinedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Env{}, false, nil
	}
	if err != nil {
		return Env{}, false, fmt.Errorf("reading joined marker: %w", err)
	}
	return marker, true, nil
}

// waitJoinCheck runs "cluster-join-check ROLE" until it exits 0 or the
// join timeout passes: at once, then after waits of JoinPollMin doubling up
// to JoinPoll. Each run may wait inside for up to JoinCheckWait
// (JOIN_CHECK_WAIT, seconds) for the membership, so a check that watches
// the cluster answers as soon as the host is in.
func (a *Agent) waitJoinCheck(ctx context.Context, cfg clusterConfig, role string, ip netip.Addr) error {
	timeout := cfg.joinTimeout
	if a.JoinTimeout > 0 {
		timeout = a.JoinTimeout
	}
	check := a.Paths.JoinCheck()
	env := append(a.Environ(), cfg.env.Environ()...)
	env = append(env, "DETECTED_IP="+ip.String())

	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	poll := min(JoinPollMin, a.JoinPoll)
	var last *scriptResult
	for attempt := 1; ; attempt++ {
		budget := min(JoinCheckWait, max(timeout-time.Since(start), 0))
		res := runScript(waitCtx, check, []string{role}, append(env, "JOIN_CHECK_WAIT="+seconds(budget)), 0)
		if res.ok() {
			a.Log.Info("join check passed", "check", check, "role", role, "attempt", attempt,
				"output", strings.TrimSpace(res.stdout.buf.String()))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("join interrupted: %w", ctx.Err())
		}
		if last == nil || res.killed == nil {
			last = res
		}
		a.Log.Info("join check not passing yet", "check", check, "role", role, "attempt", attempt,
			"status", res.status(), "stdout", res.stdout.short(), "stderr", res.stderr.short())
		if sleep(waitCtx, poll) != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("join interrupted: %w", ctx.Err())
			}
			return fmt.Errorf("join check \"%s %s\" did not pass within %s (%d attempt(s) over %s); last result: %s, stdout %s, stderr %s",
				check, role, timeout, attempt, time.Since(start).Round(time.Millisecond),
				last.status(), last.stdout.quoted(), last.stderr.quoted())
		}
		poll = min(2*poll, a.JoinPoll)
	}
}

// seconds formats d, to the millisecond, as the decimal seconds
// cluster.env uses.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Round(time.Millisecond).Seconds(), 'f', -1, 64)
}
