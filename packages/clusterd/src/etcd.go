package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The etcd store: masters run etcd as a static cluster from MASTER_LIST,
// bound to the detected IP (ports 2379 for clients, 2380 for peers), and
// every host keeps a key /cluster/members/<ip> alive under a lease. clusterd
// speaks etcd's v3 JSON gateway with net/http, so it stays stdlib-only.

const (
	etcdClientPort = "2379"
	etcdPeerPort   = "2380"
	memberPrefix   = "/cluster/members/"
)

// etcdArgs is the etcd command line of the master at ip in a cluster whose
// masters are masters (space separated). Each member is named by its IP, so
// the static initial cluster follows from MASTER_LIST alone.
func etcdArgs(ip, masters, cluster, dataDir string) ([]string, error) {
	self, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("this host's IP %q is not an IP address", ip)
	}
	var initial []string
	found := false
	for _, m := range strings.Fields(masters) {
		a, err := netip.ParseAddr(m)
		if err != nil {
			return nil, fmt.Errorf("MASTER_LIST entry %q is not an IP address", m)
		}
		found = found || a == self
		initial = append(initial, m+"="+peerURL(m))
	}
	if !found {
		return nil, fmt.Errorf("this master's IP %s is not in MASTER_LIST (%s): a master must be listed there (check ip-detect)", ip, masters)
	}
	if cluster == "" {
		cluster = "cluster"
	}
	args := []string{
		"--name", ip,
		"--data-dir", dataDir,
		"--listen-peer-urls", peerURL(ip),
		"--initial-advertise-peer-urls", peerURL(ip),
		"--listen-client-urls", clientURL(ip) + ",http://127.0.0.1:" + etcdClientPort,
		"--advertise-client-urls", clientURL(ip),
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", cluster,
	}
	if len(initial) == 1 {
		args = append(args, singleMemberTiming...)
	}
	return args, nil
}

// singleMemberTiming shortens raft's timing for a cluster of one master.
// etcd fast-forwards a lone member's election clock but still waits 1 to
// election/heartbeat ticks (default 100 ms x 10: up to 1 s, mean 0.55 s)
// before it elects itself and serves; 50 ms x 5 makes that 50-250 ms. With
// no peer, nobody else can time out or start an election, so shorter
// timing cannot cause needless elections; the lease minimum TTL derived
// from it (about 1 s) stays under clusterd's leases. Several masters keep
// etcd's defaults, which suit a LAN's round trips and slow (TCG) CPUs.
// fsync stays on: --unsafe-no-fsync would save about 0.1 s at the first
// election but a power cut could then lose or corrupt the WAL.
var singleMemberTiming = []string{"--heartbeat-interval", "50", "--election-timeout", "250"}

func peerURL(ip string) string   { return "http://" + net.JoinHostPort(ip, etcdPeerPort) }
func clientURL(ip string) string { return "http://" + net.JoinHostPort(ip, etcdClientPort) }

// etcdDataDir is where a master keeps etcd's data.
func etcdDataDir(stateDir string) string { return filepath.Join(stateDir, "etcd") }

// etcdClient talks to one etcd endpoint through its JSON gateway.
type etcdClient struct {
	http *http.Client
	url  string // http://host:2379
}

func (c etcdClient) call(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(r)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s%s: %w", c.url, path, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s: %s", c.url, path, res.Status, bytes.TrimSpace(data))
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("%s%s: decoding answer: %w", c.url, path, err)
	}
	return nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// register grants a lease of ttl and puts /cluster/members/<ip> under it.
func (c etcdClient) register(ctx context.Context, self registration, ttl time.Duration) error {
	var lease struct {
		ID string `json:"ID"`
	}
	if err := c.call(ctx, "/v3/lease/grant", map[string]any{"TTL": int64(ttl.Seconds())}, &lease); err != nil {
		return err
	}
	if lease.ID == "" {
		return fmt.Errorf("%s: lease grant returned no ID", c.url)
	}
	val, _ := json.Marshal(self)
	var put struct{}
	return c.call(ctx, "/v3/kv/put", map[string]any{"key": b64(memberPrefix + self.IP), "value": b64(string(val)), "lease": lease.ID}, &put)
}

// member returns the registration of ip, or ok=false when it has none.
func (c etcdClient) member(ctx context.Context, ip string) (reg registration, ok bool, err error) {
	var resp struct {
		Kvs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := c.call(ctx, "/v3/kv/range", map[string]any{"key": b64(memberPrefix + ip)}, &resp); err != nil {
		return registration{}, false, err
	}
	if len(resp.Kvs) == 0 {
		return registration{}, false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(resp.Kvs[0].Value)
	if err != nil {
		return registration{}, false, fmt.Errorf("%s: member key of %s: %w", c.url, ip, err)
	}
	if err := json.Unmarshal(raw, &reg); err != nil {
		return registration{}, false, fmt.Errorf("%s: member key of %s holds %q: %w", c.url, ip, raw, err)
	}
	return reg, true, nil
}

// etcdMember is one entry of etcd's member list.
type etcdMember struct {
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

func (c etcdClient) members(ctx context.Context) ([]etcdMember, error) {
	var resp struct {
		Members []etcdMember `json:"members"`
	}
	if err := c.call(ctx, "/v3/cluster/member/list", map[string]any{}, &resp); err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// checkEtcd is the join check with the etcd store. A master is a member
// when etcd's own member list, asked at its client URL, holds it as a
// started member (its peer URL, with client URLs once it runs) and its key
// is there; any other role when some master's etcd holds its key with its
// role. It returns what it found, for the log.
func checkEtcd(ctx context.Context, client *http.Client, role, ip, masters string) (string, error) {
	if role == "master" {
		c := etcdClient{http: client, url: clientURL(ip)}
		ms, err := c.members(ctx)
		if err != nil {
			return "", err
		}
		var names []string
		for _, m := range ms {
			names = append(names, m.Name)
			for _, p := range m.PeerURLs {
				if p == peerURL(ip) && m.Name != "" && len(m.ClientURLs) > 0 {
					if _, ok, err := c.member(ctx, ip); err != nil || !ok {
						return "", fmt.Errorf("etcd at %s lists %s as a member but holds no key %s%s yet (%v)", c.url, ip, memberPrefix, ip, err)
					}
					return fmt.Sprintf("etcd member list at %s holds %s (members: %s)", c.url, ip, strings.Join(names, " ")), nil
				}
			}
		}
		return "", fmt.Errorf("etcd at %s does not list %s as a started member (members: %q)", c.url, ip, names)
	}
	if len(strings.Fields(masters)) == 0 {
		return "", errors.New("no masters to ask (MASTER_LIST is empty)")
	}
	var errs []error
	for _, m := range strings.Fields(masters) {
		c := etcdClient{http: client, url: clientURL(m)}
		reg, ok, err := c.member(ctx, ip)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
			errs = append(errs, fmt.Errorf("etcd at %s holds no key %s%s", c.url, memberPrefix, ip))
		case reg.Role != role:
			errs = append(errs, fmt.Errorf("etcd at %s registers %s as %s, not %s", c.url, ip, reg.Role, role))
		default:
			return fmt.Sprintf("etcd at %s holds %s%s (%s)", c.url, memberPrefix, ip, reg.Role), nil
		}
	}
	return "", errors.Join(errs...)
}

// keepRegistered keeps this host's key alive in etcd until ctx ends: every
// r.every it puts the key again under a fresh lease of three intervals, on
// the first endpoint that answers (a master asks its own etcd first); after
// a failure it retries as retryClock says.
func keepRegistered(ctx context.Context, r registrar, endpoints []string) {
	ttl := max(3*r.every, 5*time.Second)
	clock := retryClock{r: r}
	registered := false
	for {
		var errs []error
		ok := false
		for _, url := range endpoints {
			if err := (etcdClient{http: r.client, url: url}).register(ctx, r.self, ttl); err != nil {
				errs = append(errs, err)
				continue
			}
			if !registered {
				r.log.Info("registered in etcd", "endpoint", url, "ip", r.self.IP, "role", r.self.Role)
			}
			ok = true
			break
		}
		if ctx.Err() != nil {
			return
		}
		next := r.every
		if ok {
			registered = true
			clock.succeeded()
		} else {
			var warn bool
			if next, warn = clock.failed(time.Now()); warn {
				r.log.Warn("etcd registration failed; retrying", "err", errors.Join(errs...), "retry_in", next)
			}
			registered = false
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// serveEtcd runs the daemon with the etcd store: registration only (etcd
// itself runs as cluster-etcd.service on masters).
func serveEtcd(ctx context.Context, c config, log *slog.Logger) error {
	reg := registrar{client: &http.Client{Timeout: 5 * time.Second}, self: registration{IP: c.ip, Role: c.role},
		every: c.every, minBackoff: c.minBackoff, maxBackoff: c.maxBackoff,
		fastRetry: c.fastRetry, fastFor: c.fastFor, log: log}
	var endpoints []string
	if c.role == "master" {
		endpoints = append(endpoints, clientURL(c.ip))
	}
	for _, m := range strings.Fields(c.masters) {
		if m != c.ip {
			endpoints = append(endpoints, clientURL(m))
		}
	}
	log.Info("clusterd running (etcd store)", "ip", c.ip, "role", c.role, "endpoints", endpoints)
	keepRegistered(ctx, reg, endpoints)
	return nil
}

// etcdBin is the etcd program; the package build sets it to the etcd
// package's on-host path with -ldflags "-X main.etcdBin=...".
var etcdBin = "etcd"

// execEtcd replaces clusterd with etcd, as a member of the static cluster.
func execEtcd(c config) error {
	args, err := etcdArgs(c.ip, c.masters, c.name, etcdDataDir(c.stateDir))
	if err != nil {
		return err
	}
	if args, err = listenOverride(args, listenCredential); err != nil {
		return err
	}
	bin, err := exec.LookPath(c.etcdBin)
	if err != nil {
		return fmt.Errorf("etcd program: %w", err)
	}
	return syscall.Exec(bin, append([]string{bin}, args...), os.Environ())
}

// listenCredential is the system credential that replaces etcd's client
// listen URLs (the advertised URL stays the detected IP). Test VMs use it
// to make etcd answer on their user-mode NIC too, for a host port forward;
// see firstboot/README.md for why that is safe only there.
var listenCredential = "/run/credentials/@system/cluster.etcd-listen-client-urls"

// listenOverride replaces --listen-client-urls in args with the URLs of the
// credential file at path, when it exists: comma separated
// http://IP:2379, IP literals only.
func listenOverride(args []string, path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return args, nil
	}
	if err != nil {
		return nil, fmt.Errorf("etcd listen credential: %w", err)
	}
	v := strings.TrimSpace(string(data))
	for _, u := range strings.Split(v, ",") {
		host, ok := strings.CutPrefix(u, "http://")
		h, port, err := net.SplitHostPort(host)
		if !ok || err != nil || port != etcdClientPort {
			return nil, fmt.Errorf("%s: %q is not http://IP:%s", path, u, etcdClientPort)
		}
		if _, err := netip.ParseAddr(h); err != nil {
			return nil, fmt.Errorf("%s: %q: host %q is not an IP address", path, u, h)
		}
	}
	out := slices.Clone(args)
	for i := range out {
		if out[i] == "--listen-client-urls" && i+1 < len(out) {
			out[i+1] = v
			return out, nil
		}
	}
	return nil, errors.New("etcd arguments have no --listen-client-urls")
}
