package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where systemd-networkd publishes its state: the manager's in
// NetworkdStateFile, each link's in NetworkdLinksDir/<ifindex> (the files
// sd-network, networkctl and wait-online read).
const (
	NetworkdStateFile = "/run/systemd/netif/state"
	NetworkdLinksDir  = "/run/systemd/netif/links"
)

// networkWaitTimeout bounds the wait for networkd's links, as
// systemd-networkd-wait-online's default timeout does.
const networkWaitTimeout = 2 * time.Minute

// networkPoll is how often the links are read again when no change of
// networkd's state files woke the wait (a safety net under inotify).
const networkPoll = 250 * time.Millisecond

// waitNetwork holds ip-detect back until the links are configured for the
// address families of MASTER_LIST, so its answer (typically the source
// address of the route to a master) is taken from a configured network and
// never from a half-configured one — a default route on another NIC must
// not win a race against the right NIC.
//
// Under systemd-networkd it reads networkd's link states (waitNetworkd,
// linkReady): every link networkd manages is configured, or has a routable
// address of each family the masters use. That is what network-online.target means
// (systemd-networkd-wait-online), less the IPv6 link-local address that
// networkd waits for before it calls a link configured: its duplicate
// address detection takes a second or more on every NIC, for a cluster
// that may speak IPv4 only. Without networkd it waits for
// network-online.target itself (also when MASTER_LIST names no master to
// take a family from). A wait that fails is logged and ip-detect
// runs anyway.
//
// It reports whether the wait ended with the network configured.
func (a *Agent) waitNetwork(ctx context.Context, cfg clusterConfig) bool {
	if a.Systemd == nil {
		return false
	}
	start := time.Now()
	v4, v6 := masterFamilies(cfg)
	var how string
	var err error
	if _, serr := os.Stat(a.Paths.Host(NetworkdStateFile)); serr == nil && (v4 || v6) {
		how = "systemd-networkd's links (" + familyNames(v4, v6) + ")"
		err = a.waitNetworkd(ctx, v4, v6)
	} else {
		how = "network-online.target"
		err = a.Systemd.Start(ctx, "network-online.target")
	}
	if err != nil {
		a.Log.Warn("waiting for the network failed; running ip-detect anyway", "waited_for", how, "err", err,
			"after", time.Since(start).Round(time.Millisecond))
		return false
	}
	a.Log.Info("network configured", "waited_for", how, "after", time.Since(start).Round(time.Millisecond))
	return true
}

func familyNames(v4, v6 bool) string {
	switch {
	case v4 && v6:
		return "IPv4 and IPv6"
	case v6:
		return "IPv6"
	default:
		return "IPv4"
	}
}

// waitNetworkd waits until no link is pending (networkdPending), reading
// the links again whenever networkd rewrites a state file (inotify) and at
// least every networkPoll, for networkWaitTimeout at most.
func (a *Agent) waitNetworkd(ctx context.Context, v4, v6 bool) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, networkWaitTimeout)
	defer cancel()
	changed, stop := watchDir(a.Paths.Host(NetworkdLinksDir))
	defer stop()
	for {
		pending, err := a.networkdPending(v4, v6)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		t := time.NewTimer(networkPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("links not configured after %s: %s", time.Since(start).Round(time.Millisecond), strings.Join(pending, "; "))
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// networkdPending lists the links that hold ip-detect back, each as
// "NAME: why". It asks the kernel for the links (not networkd: a NIC that
// networkd has not picked up yet has no state file and is pending) and
// reads each one's networkd state.
func (a *Agent) networkdPending(v4, v6 bool) ([]string, error) {
	links := a.Interfaces
	if links == nil {
		links = net.Interfaces
	}
	ifs, err := links()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	var pending []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		p := filepath.Join(NetworkdLinksDir, strconv.Itoa(ifc.Index))
		st, err := readNetworkdState(a.Paths.Host(p))
		if errors.Is(err, fs.ErrNotExist) {
			pending = append(pending, ifc.Name+": networkd has not picked it up yet (no "+p+")")
			continue
		}
		if err != nil {
			return nil, err
		}
		if ready, why := linkReady(st, v4, v6); !ready {
			pending = append(pending, ifc.Name+": "+why)
		}
	}
	return pending, nil
}

// linkReady decides from one link's networkd state whether ip-detect may
// run as far as this link goes. Links networkd does not manage, does not
// require for online or failed to configure never hold it back; a managed
// link does until it is configured or has a routable address of each
// family asked for (a DHCP lease or a static address) while networkd still
// waits for something else, such as its IPv6 link-local address.
func linkReady(st map[string]string, v4, v6 bool) (bool, string) {
	admin := st["ADMIN_STATE"]
	switch {
	case admin == "configured", admin == "unmanaged", admin == "linger", admin == "failed":
		return true, ""
	case st["REQUIRED_FOR_ONLINE"] == "no":
		return true, ""
	case admin != "configuring":
		return false, "networkd state " + strconv.Quote(admin)
	}
	var missing []string
	if v4 && st["IPV4_ADDRESS_STATE"] != "routable" {
		missing = append(missing, "IPv4")
	}
	if v6 && st["IPV6_ADDRESS_STATE"] != "routable" {
		missing = append(missing, "IPv6")
	}
	if len(missing) == 0 {
		return true, ""
	}
	return false, "configuring, no routable " + strings.Join(missing, " or ") + " address yet"
}

// readNetworkdState reads a networkd state file: KEY=VALUE lines, values
// unquoted (lists are space separated), # comments.
func readNetworkdState(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st := map[string]string{}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			st[k] = v
		}
	}
	return st, nil
}

// watchDir signals (coalesced) when a file in dir is written, renamed into
// it or removed. Without inotify, or without dir, it never signals: the
// caller polls as well.
func watchDir(dir string) (<-chan struct{}, func()) {
	changed := make(chan struct{}, 1)
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return changed, func() {}
	}
	mask := uint32(syscall.IN_CLOSE_WRITE | syscall.IN_MOVED_TO | syscall.IN_CREATE | syscall.IN_DELETE)
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		syscall.Close(fd)
		return changed, func() {}
	}
	f := os.NewFile(uintptr(fd), "inotify")
	go signalReads(f, changed, 4096, nil)
	return changed, func() { f.Close() }
}

// masterFamilies says which address families MASTER_LIST holds.
func masterFamilies(cfg clusterConfig) (v4, v6 bool) {
	list, _ := cfg.env.Get("MASTER_LIST")
	for _, m := range strings.Fields(list) {
		ip, err := netip.ParseAddr(m)
		switch {
		case err != nil:
			// Not an address (a name?): wait for everything.
			return true, true
		case ip.Unmap().Is4():
			v4 = true
		default:
			v6 = true
		}
	}
	return v4, v6
}
