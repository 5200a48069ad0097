package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"
)

// New returns an agent for the real host described by p: it runs real
// scripts, lists real interfaces and starts units with systemctl.
func New(p Paths, stdout io.Writer, log *slog.Logger) *Agent {
	return &Agent{
		Paths:          p,
		Stdout:         stdout,
		Log:            log,
		Getenv:         os.Getenv,
		Environ:        os.Environ,
		InterfaceAddrs: net.InterfaceAddrs,
		Interfaces:     net.Interfaces,
		Systemd:        Systemctl{},
		Now:            time.Now,
		IPDetectRetry:  DefaultIPDetectRetry(),
		WatchNet:       WatchNetlink,
		JoinPoll:       DefaultJoinPoll,
	}
}

const usage = `usage: cluster-firstboot [common flags] COMMAND [flags]

commands:
  ipdetect   run ip-detect, validate its answer, write /run/cluster/ip.env
  join       start the role target and join the cluster (once); every boot
  testd      serve a test harness's command channel (virtio-serial port
             org.imagebuilder.test); started only when QEMU provides it

common flags (also accepted after COMMAND):
  --prefix DIR   install prefix (default %s)
  --env FILE     cluster env file (default PREFIX/etc/cluster.env)
  --root DIR     root for /etc, /run, /var/lib, /proc (default /; for tests)

ipdetect flags:
  --retry-min D  first wait between attempts (default 250ms); a change of
                 the host's addresses or routes starts the next one at once
  --retry-max D  longest wait between attempts (default 10s)
  --retry-for D  stop starting attempts after this long (default 1m0s), but
                 not before network-online.target is reached (3 min at most)

testd flags:
  --port FILE       the port (default /dev/virtio-ports/org.imagebuilder.test)

join flags:
  --poll D          longest interval between join checks (default 2s; the
                    first is 100ms, doubling); each check may wait inside
                    for up to 30s (JOIN_CHECK_WAIT) for the membership
  --join-timeout D  override JOIN_TIMEOUT from the env file
`

type options struct {
	prefix, env, root string
	retry             Backoff
	poll, joinTimeout time.Duration
	port              string
}

func (o *options) common(fs *flag.FlagSet) {
	fs.StringVar(&o.prefix, "prefix", o.prefix, "install prefix")
	fs.StringVar(&o.env, "env", o.env, "cluster env file")
	fs.StringVar(&o.root, "root", o.root, "root for host paths")
}

// Main runs the cluster-firstboot command line and returns the exit code:
// 0 on success, 1 on failure (after printing the FAILED console line), 2 on
// a usage error. prefix is the prefix the binary was built for.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, prefix string) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{
		// journald stamps every line already.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	o := options{prefix: prefix, root: "/", retry: DefaultIPDetectRetry(), poll: DefaultJoinPoll}
	cmd, err := o.parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, usage, prefix)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "cluster-firstboot: %v\n\n"+usage, err, prefix)
		return 2
	}
	a := New(NewPaths(o.root, o.prefix, o.env), stdout, log)
	a.IPDetectRetry = o.retry
	a.JoinPoll = o.poll
	a.JoinTimeout = o.joinTimeout
	switch cmd {
	case "ipdetect":
		err = a.IPDetect(ctx)
	case "join":
		err = a.Join(ctx)
	case "testd":
		err = a.TestD(ctx, o.port)
	}
	if err != nil {
		log.Error(cmd+" failed", "err", err)
		PrintFailed(stdout, err)
		return 1
	}
	return 0
}

// parse reads the common flags, the command and its flags.
func (o *options) parse(args []string, stderr io.Writer) (string, error) {
	top := flag.NewFlagSet("cluster-firstboot", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	o.common(top)
	if err := top.Parse(args); err != nil {
		return "", err
	}
	if top.NArg() == 0 {
		return "", errors.New("no command given")
	}
	cmd := top.Arg(0)
	sub := flag.NewFlagSet("cluster-firstboot "+cmd, flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	o.common(sub)
	switch cmd {
	case "ipdetect":
		sub.DurationVar(&o.retry.Min, "retry-min", o.retry.Min, "first wait between attempts")
		sub.DurationVar(&o.retry.Max, "retry-max", o.retry.Max, "longest wait between attempts")
		sub.DurationVar(&o.retry.Total, "retry-for", o.retry.Total, "stop retrying after")
	case "join":
		sub.DurationVar(&o.poll, "poll", o.poll, "interval between join checks")
		sub.DurationVar(&o.joinTimeout, "join-timeout", o.joinTimeout, "override JOIN_TIMEOUT")
	case "testd":
		sub.StringVar(&o.port, "port", TestChannel, "virtio-serial port to serve")
	case "help":
		return "", flag.ErrHelp
	default:
		return "", fmt.Errorf("unknown command %q", cmd)
	}
	if err := sub.Parse(top.Args()[1:]); err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if sub.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected arguments %q", cmd, sub.Args())
	}
	return cmd, o.validate()
}

func (o *options) validate() error {
	var errs []error
	if !filepath.IsAbs(o.prefix) {
		errs = append(errs, fmt.Errorf("--prefix %q is not an absolute path", o.prefix))
	}
	if o.retry.Min <= 0 || o.retry.Max < o.retry.Min || o.retry.Total < 0 {
		errs = append(errs, fmt.Errorf("want 0 < --retry-min <= --retry-max and --retry-for >= 0, got %s, %s, %s",
			o.retry.Min, o.retry.Max, o.retry.Total))
	}
	if o.poll <= 0 {
		errs = append(errs, fmt.Errorf("--poll must be positive, got %s", o.poll))
	}
	if o.joinTimeout < 0 {
		errs = append(errs, fmt.Errorf("--join-timeout must not be negative, got %s", o.joinTimeout))
	}
	return errors.Join(errs...)
}
