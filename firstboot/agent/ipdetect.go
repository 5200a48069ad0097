package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// IPDetect waits until the links are configured for the masters' address
// family (waitNetwork), runs the cluster's ip-detect script until it prints
// one IP that is assigned to a local interface (retrying with
// IPDetectRetry), refuses an IP that differs from the one the host joined
// with, and writes /run/cluster/ip.env. Meanwhile it enqueues the role
// target (enqueueRoleTarget), whose services wait for it to succeed.
func (a *Agent) IPDetect(ctx context.Context) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if cfg, err = a.ipDetectOverride(cfg); err != nil {
		return err
	}
	early := a.enqueueRoleTarget(ctx)
	defer early.wait() //nolint:errcheck // finish reports it on success
	online := a.waitNetwork(ctx, cfg)
	ip, err := a.detectIP(ctx, cfg, online)
	if err != nil {
		return err
	}
	if err := a.checkIPOfRecord(ip); err != nil {
		return err
	}
	if err := early.finish(a, ip); err != nil {
		return err
	}
	content, err := FormatEnv([2]string{"DETECTED_IP", ip.String()})
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(a.Paths.Host(IPEnvFile), []byte(content), 0o644); err != nil {
		return fmt.Errorf("recording detected IP: %w", err)
	}
	a.Log.Info("wrote detected IP", "file", IPEnvFile, "ip", ip)
	printDetected(a.Stdout, ip.String(), cfg.ipDetect)
	return nil
}

// detectIP runs ip-detect with backoff until one attempt gives a usable IP.
// A change of the host's addresses or routes (WatchNet) starts the next
// attempt at once, so the answer comes as soon as the address exists. When
// the network wait did not end with the network configured (online false),
// the retry budget does not run out before network-online.target is
// reached (within networkOnlineGrace).
func (a *Agent) detectIP(ctx context.Context, cfg clusterConfig, online bool) (netip.Addr, error) {
	start := time.Now()
	wait := a.IPDetectRetry.Min
	env := append(a.Environ(), cfg.env.Environ()...)
	var nw NetWatch
	if a.WatchNet != nil {
		// Opened before the first attempt, so a change during it counts.
		w, err := a.WatchNet()
		if err != nil {
			a.Log.Warn("not watching network changes; retrying on the timer only", "err", err)
		} else {
			nw = w
			defer w.Close()
		}
	}
	for attempt := 1; ; attempt++ {
		a.Log.Info("running ip-detect", "script", cfg.ipDetect, "attempt", attempt, "timeout", cfg.ipDetectTimeout)
		ip, err := a.detectOnce(ctx, cfg, env)
		if err == nil {
			return ip, nil
		}
		a.Log.Warn("ip-detect attempt failed", "script", cfg.ipDetect, "attempt", attempt, "err", err)
		elapsed := time.Since(start)
		if ctx.Err() != nil {
			return netip.Addr{}, fmt.Errorf("ip-detect %s interrupted after %d attempt(s): %w", cfg.ipDetect, attempt, ctx.Err())
		}
		if elapsed+wait > a.IPDetectRetry.Total && (online || a.retryBudgetSpent(ctx, elapsed)) {
			return netip.Addr{}, fmt.Errorf("ip-detect %s gave no usable IP after %d attempt(s) in %s; last attempt: %w",
				cfg.ipDetect, attempt, elapsed.Round(time.Millisecond), err)
		}
		woken, err := waitRetry(ctx, nw, wait)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("ip-detect %s: interrupted while waiting to retry: %w", cfg.ipDetect, err)
		}
		if woken {
			a.Log.Info("network changed; running ip-detect again")
			continue
		}
		wait = min(2*wait, a.IPDetectRetry.Max)
	}
}

// retryBudgetSpent says whether ip-detect, past its retry budget after
// elapsed, should give up: once network-online.target is reached, or at
// the latest networkOnlineGrace later, or when systemd cannot say.
func (a *Agent) retryBudgetSpent(ctx context.Context, elapsed time.Duration) bool {
	if elapsed >= a.IPDetectRetry.Total+networkOnlineGrace || a.Systemd == nil {
		return true
	}
	online, err := a.Systemd.IsActive(ctx, "network-online.target")
	if err != nil {
		a.Log.Warn("cannot tell whether network-online.target is reached; giving up as the retry budget says", "err", err)
		return true
	}
	if online {
		return true
	}
	a.Log.Info("ip-detect retry budget spent but network-online.target is not reached yet; still retrying",
		"budget", a.IPDetectRetry.Total)
	return false
}

// detectOnce runs ip-detect once and validates what it printed.
func (a *Agent) detectOnce(ctx context.Context, cfg clusterConfig, env []string) (netip.Addr, error) {
	prog, args := cfg.ipDetect, []string(nil)
	if len(cfg.ipDetectInterp) > 0 {
		prog, args = cfg.ipDetectInterp[0], append(slices.Clone(cfg.ipDetectInterp[1:]), cfg.ipDetect)
	}
	res := runScript(ctx, prog, args, env, cfg.ipDetectTimeout)
	if !res.ok() {
		return netip.Addr{}, fmt.Errorf("%s; it printed %s on stdout and %s on stderr",
			res.status(), res.stdout.quoted(), res.stderr.quoted())
	}
	ip, err := ParseIPOutput(res.stdout.buf.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("it printed %s: %w", res.stdout.quoted(), err)
	}
	local, err := a.localAddrs()
	if err != nil {
		return netip.Addr{}, err
	}
	if !slices.Contains(local, ip) {
		names := make([]string, len(local))
		for i, l := range local {
			names[i] = l.String()
		}
		return netip.Addr{}, fmt.Errorf("it printed %s, which is not assigned to any local interface (local addresses: %s)",
			res.stdout.quoted(), strings.Join(names, ", "))
	}
	return ip, nil
}

// ParseIPOutput validates what ip-detect printed: exactly one IPv4 or IPv6
// address, optionally followed by a newline; no zone, not unspecified, not
// multicast. An IPv4-mapped IPv6 address is returned as IPv4.
func ParseIPOutput(out string) (netip.Addr, error) {
	s := strings.TrimSuffix(strings.TrimSuffix(out, "\n"), "\r")
	switch {
	case strings.TrimSpace(s) == "":
		return netip.Addr{}, errors.New("want exactly one IP address, got nothing")
	case strings.Contains(s, "\n"):
		return netip.Addr{}, fmt.Errorf("want exactly one IP address, got %d lines", strings.Count(s, "\n")+1)
	case len(strings.Fields(s)) > 1:
		return netip.Addr{}, fmt.Errorf("want exactly one IP address, got %d words", len(strings.Fields(s)))
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, errors.New("that is not an IP address")
	}
	switch {
	case ip.Zone() != "":
		return netip.Addr{}, errors.New("an address with a zone cannot be a cluster address")
	case ip.IsUnspecified():
		return netip.Addr{}, errors.New("the unspecified address cannot be a cluster address")
	case ip.IsMulticast():
		return netip.Addr{}, errors.New("a multicast address cannot be a cluster address")
	}
	return ip.Unmap(), nil
}

func (a *Agent) localAddrs() ([]netip.Addr, error) {
	addrs, err := a.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing local interface addresses: %w", err)
	}
	var out []netip.Addr
	for _, addr := range addrs {
		var ip net.IP
		switch v := addr.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

// checkIPOfRecord refuses an IP that differs from the one the host joined
// with. Before the join any IP is fine.
func (a *Agent) checkIPOfRecord(ip netip.Addr) error {
	marker, joined, err := a.readMarker()
	if err != nil || !joined {
		return err
	}
	recorded, err := a.ipOfRecord(marker)
	if err != nil {
		return err
	}
	if recorded != ip {
		return fmt.Errorf("IP changed after join: was %s, now %s; refusing", recorded, ip)
	}
	return nil
}

// ipOfRecord reads /var/lib/cluster/ip, falling back to the IP in the
// joined marker.
func (a *Agent) ipOfRecord(marker Env) (netip.Addr, error) {
	text, err := os.ReadFile(a.Paths.Host(StateIPFile))
	source := StateIPFile
	if errors.Is(err, fs.ErrNotExist) {
		a.Log.Warn("joined marker present but IP of record missing; using the marker's IP", "file", StateIPFile)
		text = []byte(marker.Values["IP"])
		source = JoinedFile
	} else if err != nil {
		return netip.Addr{}, fmt.Errorf("reading IP of record: %w", err)
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(string(text)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host is joined but %s holds no valid IP (%q); refusing", source, strings.TrimSpace(string(text)))
	}
	return ip.Unmap(), nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ipDetectOverride uses the system credential cluster.ip-detect, when the
// host was booted with one, instead of the bundle's ip-detect: it is copied
// to /run/cluster/ip-detect (mode 0755) and cfg points there; it runs
// through the interpreter of its #! line, as the kernel would, since /run
// may be mounted noexec. The image
// stays as built; the credential is how a fixed ip-detect reaches a host
// whose bundled one fails (SMBIOS type 11, or the kernel command line's
// systemd.set_credential_binary=cluster.ip-detect:BASE64).
func (a *Agent) ipDetectOverride(cfg clusterConfig) (clusterConfig, error) {
	src := filepath.Join(SystemCredentialsDir, IPDetectCredential)
	data, err := os.ReadFile(a.Paths.Host(src))
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("reading the ip-detect credential: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, fmt.Errorf("credential %s is empty: want an ip-detect script", src)
	}
	interp, err := shebang(data)
	if err != nil {
		return cfg, fmt.Errorf("credential %s: %w", src, err)
	}
	if err := WriteFileAtomic(a.Paths.Host(IPDetectOverrideFile), data, 0o755); err != nil {
		return cfg, fmt.Errorf("installing the ip-detect credential: %w", err)
	}
	a.Log.Info("using ip-detect from a credential instead of the bundle's", "credential", src, "replaces", cfg.ipDetect)
	fmt.Fprintf(a.Stdout, "cluster-firstboot: ip-detect from credential %s replaces %s\n", IPDetectCredential, cfg.ipDetect)
	cfg.ipDetect, cfg.ipDetectInterp = a.Paths.Host(IPDetectOverrideFile), interp
	return cfg, nil
}

// shebang returns the interpreter and its optional argument from a
// script's "#!" line (the rest of the line after the program is one
// argument, as the kernel reads it).
func shebang(data []byte) ([]string, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	rest, ok := bytes.CutPrefix(line, []byte("#!"))
	prog, arg, _ := strings.Cut(strings.TrimSpace(string(rest)), " ")
	if !ok || !filepath.IsAbs(prog) {
		return nil, fmt.Errorf("want a script whose first line is #! and an absolute interpreter path, got %q", line)
	}
	if arg = strings.TrimSpace(arg); arg != "" {
		return []string{prog, arg}, nil
	}
	return []string{prog}, nil
}
