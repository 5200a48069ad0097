package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
)

// earlyStart is the role target that ip-detect enqueued while it still
// ran, so the role's services start the moment it succeeds (they, and the
// role target, require and follow cluster-ipdetect.service) instead of
// after cluster-firstboot.service has started and asked for them.
type earlyStart struct {
	target string
	joined bool
	done   chan error
	once   sync.Once
	err    error
}

// wait returns the enqueue's result once it is in.
func (e *earlyStart) wait() error {
	if e == nil {
		return nil
	}
	e.once.Do(func() { e.err = <-e.done })
	return e.err
}

// enqueueRoleTarget enqueues cluster-<role>.target ("systemctl start
// --no-block", in the background) when the host's role resolves and, if
// the host joined already, is the role it joined with. Otherwise it
// enqueues nothing and leaves the verdict to Join, which reports a missing
// or changed role. It returns nil when nothing was enqueued.
func (a *Agent) enqueueRoleTarget(ctx context.Context) *earlyStart {
	if a.Systemd == nil {
		return nil
	}
	role, _, err := a.ResolveRole()
	if err != nil {
		return nil
	}
	marker, joined, err := a.readMarker()
	if err != nil {
		return nil
	}
	if was := marker.Values["ROLE"]; joined && was != "" && was != role {
		return nil
	}
	e := &earlyStart{target: "cluster-" + role + ".target", joined: joined, done: make(chan error, 1)}
	go func() { e.done <- a.Systemd.StartNoBlock(ctx, e.target) }()
	return e
}

// finish runs once ip-detect succeeded with ip: a host that has not joined
// records ip as its IP of record before the role's services can start (as
// Join does before it starts the role target). It then waits for the
// enqueue; a failed enqueue is only logged, since Join starts the target
// again.
func (e *earlyStart) finish(a *Agent, ip netip.Addr) error {
	if e == nil {
		return nil
	}
	if !e.joined {
		if err := WriteFileAtomic(a.Paths.Host(StateIPFile), []byte(ip.String()+"\n"), 0o644); err != nil {
			return fmt.Errorf("recording IP of record: %w", err)
		}
	}
	if err := e.wait(); err != nil {
		a.Log.Warn("could not enqueue the role target early; cluster-firstboot starts it", "target", e.target, "err", err)
		return nil
	}
	if err := WriteFileAtomic(a.Paths.Host(EnqueuedFile), []byte(e.target+"\n"), 0o644); err != nil {
		a.Log.Warn("could not record the enqueued role target; cluster-firstboot starts it again", "err", err)
	}
	a.Log.Info("role target enqueued; it starts when ip-detect succeeds", "target", e.target)
	return nil
}

// startRoleTarget starts target for Join, unless ip-detect enqueued it
// this boot: that record is consumed (removed), so a later run of Join,
// after someone stopped the target, starts it again.
func (a *Agent) startRoleTarget(ctx context.Context, target string) error {
	p := a.Paths.Host(EnqueuedFile)
	enqueued, ok, err := readTrimmed(p)
	if err == nil && ok {
		err = os.Remove(p)
	}
	if err != nil {
		a.Log.Warn("cannot read or consume the enqueued role target; starting it", "file", EnqueuedFile, "err", err)
	}
	if err == nil && enqueued == target {
		a.Log.Info("role target was enqueued by ip-detect", "target", target)
		return nil
	}
	return a.Systemd.StartNoBlock(ctx, target)
}
