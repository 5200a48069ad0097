package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Where systemd-networkd keeps its state and its wait-online program
// (Debian has /lib, merged-/usr distributions /usr/lib).
const (
	NetworkdStateFile = "/run/systemd/netif/state"
	networkdWaitLib   = "/lib/systemd/systemd-networkd-wait-online"
	networkdWaitUsr   = "/usr/lib/systemd/systemd-networkd-wait-online"
)

// waitNetwork holds ip-detect back until the links are configured for the
// address families of MASTER_LIST, so its answer (typically the source
// address of the route to a master) is taken from a configured network and
// never from a half-configured one — a default route on another NIC must
// not win a race against the right NIC.
//
// Under systemd-networkd it runs systemd-networkd-wait-online with -4 (or
// -6) when every master is IPv4 (IPv6): all managed links have their
// addresses of that family. That is what network-online.target means, less
// waiting for the other family (an IPv6 link-local address takes a second
// or two of duplicate address detection on a DHCP NIC, for a cluster that
// speaks IPv4). Without networkd, or with masters of both families, it
// waits for network-online.target itself. A wait that fails is logged and
// ip-detect runs anyway, as it would once network-online.target is reached
// after a failed wait-online.
func (a *Agent) waitNetwork(ctx context.Context, cfg clusterConfig) {
	if a.Systemd == nil {
		return
	}
	start := time.Now()
	v4, v6 := masterFamilies(cfg)
	bin := a.networkdWaitOnline()
	var how string
	var err error
	switch {
	case bin != "" && v4 != v6:
		flag := "-4"
		if v6 {
			flag = "-6"
		}
		how = bin + " " + flag
		var out []byte
		out, err = exec.CommandContext(ctx, bin, flag).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
	default:
		how = "network-online.target"
		err = a.Systemd.Start(ctx, "network-online.target")
	}
	if err != nil {
		a.Log.Warn("waiting for the network failed; running ip-detect anyway", "waited_for", how, "err", err,
			"after", time.Since(start).Round(time.Millisecond))
		return
	}
	a.Log.Info("network configured", "waited_for", how, "after", time.Since(start).Round(time.Millisecond))
}

// networkdWaitOnline returns the wait-online program when systemd-networkd
// manages this host's network (its state file exists), else "".
func (a *Agent) networkdWaitOnline() string {
	if _, err := os.Stat(a.Paths.Host(NetworkdStateFile)); err != nil {
		return ""
	}
	for _, p := range []string{networkdWaitLib, networkdWaitUsr} {
		if st, err := os.Stat(a.Paths.Host(p)); err == nil && st.Mode().IsRegular() {
			return a.Paths.Host(p)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.Log.Warn("cannot stat wait-online", "path", p, "err", err)
		}
	}
	return ""
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
