package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const usage = `usage:
  clusterd etcd [flags]                on a master: exec etcd as a member of the static cluster of MASTER_LIST
  clusterd serve --role ROLE [flags]   run the daemon (keep this host registered; registry store: also serve it)
  clusterd check --role ROLE [flags]   exit 0 when the cluster lists this host's IP

store (--store, default $CLUSTERD_STORE or etcd):
  etcd      masters run etcd (cluster-etcd.service); every host keeps the key
            /cluster/members/<ip> alive under a lease; check: a master must be a
            started member in etcd's member list, other roles need their key
  registry  masters serve an HTTP member registry on :7070 (no etcd)

flags (defaults from the environment: DETECTED_IP, MASTER_LIST, CLUSTER_NAME, STATE_DIRECTORY):
  --role ROLE        master, agent or agent_public
  --ip IP            this host's IP (default $DETECTED_IP)
  --masters "IP..."  master IPs (default $MASTER_LIST)
  --port N           registry port on masters (default 7070)
serve only:
  --listen ADDR      master listen address (default IP:PORT)
  --state-dir DIR    where the master persists its registry (default $STATE_DIRECTORY or /var/lib/clusterd)
  --cluster NAME     cluster name reported by the registry (default $CLUSTER_NAME)
  --every D          re-registration interval (default 10s)
  --retry-fast D     wait after a failed registration during the first
                     --retry-fast-for of a failure streak (default 100ms)
  --retry-fast-for D (default 30s); then --retry-min doubling to --retry-max
  --retry-min D      (default 1s)
  --retry-max D      (default 5s)
check only:
  --timeout D        per-request timeout (default 5s)
  --wait D           keep checking every 100ms for up to D until the host is
                     a member (default $JOIN_CHECK_WAIT seconds, else 0: once)
`

type config struct {
	role, ip, masters, port string
	listen, stateDir, name  string
	store, etcdBin          string
	every, timeout          time.Duration
	minBackoff, maxBackoff  time.Duration
	fastRetry, fastFor      time.Duration
	wait                    time.Duration
}

// run is the command line; getenv supplies the environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if len(args) == 0 || (args[0] != "serve" && args[0] != "check" && args[0] != "etcd") {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd := args[0]
	stateDir := "/var/lib/clusterd"
	if s := getenv("STATE_DIRECTORY"); s != "" {
		stateDir, _, _ = strings.Cut(s, ":")
	}
	c := config{every: 10 * time.Second, timeout: 5 * time.Second, minBackoff: time.Second, maxBackoff: 5 * time.Second,
		fastRetry: 100 * time.Millisecond, fastFor: 30 * time.Second}
	fs := flag.NewFlagSet("clusterd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.role, "role", "", "host role")
	fs.StringVar(&c.ip, "ip", getenv("DETECTED_IP"), "this host's IP")
	fs.StringVar(&c.masters, "masters", getenv("MASTER_LIST"), "master IPs")
	fs.StringVar(&c.port, "port", "7070", "registry port")
	store := getenv("CLUSTERD_STORE")
	if store == "" {
		store = "etcd"
	}
	fs.StringVar(&c.store, "store", store, "etcd or registry")
	if cmd == "etcd" {
		c.role = "master"
		fs.StringVar(&c.stateDir, "state-dir", stateDir, "state directory")
		fs.StringVar(&c.name, "cluster", getenv("CLUSTER_NAME"), "cluster name")
		fs.StringVar(&c.etcdBin, "etcd-bin", etcdBin, "the etcd program")
	}
	if cmd == "serve" {
		fs.StringVar(&c.listen, "listen", "", "master listen address")
		fs.StringVar(&c.stateDir, "state-dir", stateDir, "state directory")
		fs.StringVar(&c.name, "cluster", getenv("CLUSTER_NAME"), "cluster name")
		fs.DurationVar(&c.every, "every", c.every, "re-registration interval")
		fs.DurationVar(&c.minBackoff, "retry-min", c.minBackoff, "first retry wait")
		fs.DurationVar(&c.maxBackoff, "retry-max", c.maxBackoff, "longest retry wait")
		fs.DurationVar(&c.fastRetry, "retry-fast", c.fastRetry, "retry wait early in a failure streak")
		fs.DurationVar(&c.fastFor, "retry-fast-for", c.fastFor, "how long fast retries last")
	} else {
		fs.DurationVar(&c.timeout, "timeout", c.timeout, "per-request timeout")
	}
	var waitErr error
	if cmd == "check" {
		c.wait, waitErr = secondsEnv(getenv("JOIN_CHECK_WAIT"))
		fs.DurationVar(&c.wait, "wait", c.wait, "keep checking for up to this long")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if waitErr != nil {
		fmt.Fprintf(stderr, "clusterd %s: JOIN_CHECK_WAIT: %v\n", cmd, waitErr)
		return 2
	}
	if err := c.validate(fs.NArg()); err != nil {
		fmt.Fprintf(stderr, "clusterd %s: %v\n", cmd, err)
		return 2
	}
	var err error
	switch {
	case cmd == "etcd":
		err = execEtcd(c)
	case cmd == "serve" && c.store == "etcd":
		err = serveEtcd(ctx, c, log)
	case cmd == "serve":
		err = serve(ctx, c, log)
	case c.store == "etcd":
		client := &http.Client{Timeout: c.timeout}
		var found string
		found, err = checkUntil(ctx, c.wait, func(ctx context.Context) (string, error) {
			return checkEtcd(ctx, client, c.role, c.ip, c.masters)
		})
		if err == nil {
			fmt.Fprintf(stdout, "clusterd check: %s (%s) is a member: %s\n", c.ip, c.role, found)
		}
	default:
		client := &http.Client{Timeout: c.timeout}
		var url string
		url, err = checkUntil(ctx, c.wait, func(ctx context.Context) (string, error) {
			return check(ctx, client, c.checkURLs(), c.ip)
		})
		if err == nil {
			fmt.Fprintf(stdout, "clusterd check: %s (%s) is a member: listed by %s\n", c.ip, c.role, url)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func (c config) validate(extra int) error {
	var errs []error
	if extra > 0 {
		errs = append(errs, errors.New("unexpected arguments"))
	}
	if !validRole(c.role) {
		errs = append(errs, fmt.Errorf("--role %q: want master, agent or agent_public", c.role))
	}
	if _, _, err := validMember(c.ip, "agent"); err != nil {
		errs = append(errs, fmt.Errorf("--ip (or $DETECTED_IP) %q is not a usable IP", c.ip))
	}
	if c.role != "master" && len(strings.Fields(c.masters)) == 0 {
		errs = append(errs, errors.New("--masters (or $MASTER_LIST) is empty"))
	}
	if c.every <= 0 || c.timeout <= 0 || c.minBackoff <= 0 || c.maxBackoff < c.minBackoff {
		errs = append(errs, errors.New("durations must be positive and --retry-max >= --retry-min"))
	}
	if c.fastRetry < 0 || c.fastFor < 0 || c.wait < 0 {
		errs = append(errs, errors.New("--retry-fast, --retry-fast-for and --wait must not be negative"))
	}
	if c.store != "etcd" && c.store != "registry" {
		errs = append(errs, fmt.Errorf("--store %q: want etcd or registry", c.store))
	}
	if c.stateDir != "" && !filepath.IsAbs(c.stateDir) {
		errs = append(errs, fmt.Errorf("--state-dir %q is not absolute", c.stateDir))
	}
	return errors.Join(errs...)
}

// checkURLs are the registries a check asks: a master asks itself, other
// roles ask every master.
func (c config) checkURLs() []string {
	if c.role == "master" {
		return []string{membersURL(c.ip, c.port)}
	}
	var urls []string
	for _, m := range strings.Fields(c.masters) {
		urls = append(urls, membersURL(m, c.port))
	}
	return urls
}

// serve runs the daemon until ctx ends.
func serve(ctx context.Context, c config, log *slog.Logger) error {
	self := registration{IP: c.ip, Role: c.role}
	reg := registrar{
		client:     &http.Client{Timeout: 5 * time.Second},
		self:       self,
		every:      c.every,
		minBackoff: c.minBackoff,
		maxBackoff: c.maxBackoff,
		fastRetry:  c.fastRetry,
		fastFor:    c.fastFor,
		log:        log,
	}
	var peers []string
	for _, m := range strings.Fields(c.masters) {
		if m != c.ip {
			peers = append(peers, membersURL(m, c.port))
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	// Stop the registration loops whenever serve returns.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, url := range peers {
		wg.Go(func() { reg.run(ctx, url) })
	}
	if c.role != "master" {
		log.Info("clusterd agent running", "ip", c.ip, "role", c.role, "masters", c.masters)
		<-ctx.Done()
		return nil
	}

	registry, err := OpenRegistry(filepath.Join(c.stateDir, "members.json"), time.Now)
	if err != nil {
		return err
	}
	if _, _, err := registry.Register(c.ip, "master"); err != nil {
		return fmt.Errorf("registering self: %w", err)
	}
	addr := c.listen
	if addr == "" {
		addr = net.JoinHostPort(c.ip, c.port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	return serveRegistry(ctx, ln, newHandler(registry, c.name, log), log)
}

// serveRegistry serves h on ln until ctx ends, then shuts down gracefully.
func serveRegistry(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("clusterd master serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	// Graceful first; a connection accepted but not yet sending its request
	// counts as busy for 5 s in net/http, so after a short wait the rest is
	// closed: a stopping daemon must stop.
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("graceful shutdown incomplete; closing remaining connections", "err", err)
		if err := srv.Close(); err != nil {
			return fmt.Errorf("shutting down: %w", err)
		}
	}
	return nil
}
