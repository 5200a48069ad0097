package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"
)

// DefaultPrefix is the install prefix used when the binary was not built
// for another one.
const DefaultPrefix = "/opt/cluster"

// Host paths the agent uses, as seen on the host. Paths.Host maps them
// below Paths.Root.
const (
	RoleFile             = "/etc/cluster/role"
	CmdlineFile          = "/proc/cmdline"
	IPEnvFile            = "/run/cluster/ip.env"
	StateIPFile          = "/var/lib/cluster/ip"
	JoinedFile           = "/var/lib/cluster/joined"
	SystemCredentialsDir = "/run/credentials/@system"
	RoleCredential       = "cluster.role"
	// IPDetectCredential, when present as a system credential, is an
	// ip-detect script that replaces the bundle's (the recovery path of a
	// host whose bundled ip-detect fails; see firstboot/README.md).
	IPDetectCredential = "cluster.ip-detect"
	// IPDetectOverrideFile is where that script is copied to run (the
	// credentials directory is not executable).
	IPDetectOverrideFile = "/run/cluster/ip-detect"
	// EnqueuedFile names the role target that ip-detect enqueued this
	// boot; join consumes it instead of starting the target again.
	EnqueuedFile = "/run/cluster/role-target-enqueued"
)

// Paths locates everything the agent reads and writes.
type Paths struct {
	// Root is prepended to the fixed host paths above ("/" on a host, a
	// temporary directory in tests).
	Root string
	// Prefix is where the bundle is installed (bin/cluster-join-check).
	Prefix string
	// EnvFile is the cluster's cluster.env.
	EnvFile string
}

// NewPaths returns the paths of a host installed at prefix; envFile may be
// empty for <prefix>/etc/cluster.env.
func NewPaths(root, prefix, envFile string) Paths {
	if envFile == "" {
		envFile = filepath.Join(prefix, "etc", "cluster.env")
	}
	return Paths{Root: root, Prefix: prefix, EnvFile: envFile}
}

// Host returns where the host path p lives under Root.
func (p Paths) Host(hostPath string) string {
	return filepath.Join(p.Root, hostPath)
}

// JoinCheck is the path of the join check program.
func (p Paths) JoinCheck() string {
	return filepath.Join(p.Prefix, "bin", "cluster-join-check")
}

// Backoff bounds a retry loop: waits start at Min and double up to Max;
// no new attempt starts once Total has passed since the first.
type Backoff struct {
	Min, Max, Total time.Duration
}

// DefaultIPDetectRetry returns the retry policy of ip-detect on a host:
// 250 ms doubling to 10 s, for about a minute (and until
// network-online.target is reached). A change of the host's addresses or
// routes starts the next attempt at once.
func DefaultIPDetectRetry() Backoff {
	return Backoff{Min: 250 * time.Millisecond, Max: 10 * time.Second, Total: 60 * time.Second}
}

// DefaultJoinPoll is the longest wait between two runs of the join check;
// the waits start at JoinPollMin and double up to it.
const DefaultJoinPoll = 2 * time.Second

// JoinPollMin is the first wait between two runs of the join check.
const JoinPollMin = 100 * time.Millisecond

// JoinCheckWait is how long one run of the join check may wait, inside,
// for the membership it checks (the check reads JOIN_CHECK_WAIT; a check
// that ignores it answers at once and is simply run again).
const JoinCheckWait = 30 * time.Second

// networkOnlineGrace bounds how long ip-detect keeps retrying past its
// retry budget while network-online.target is not reached yet.
const networkOnlineGrace = 3 * time.Minute

// Systemd is the part of systemd the agent needs.
type Systemd interface {
	// StartNoBlock enqueues a start job for unit and returns without
	// waiting for it ("systemctl start --no-block").
	StartNoBlock(ctx context.Context, unit string) error
	// Start starts unit and waits for the job ("systemctl start").
	Start(ctx context.Context, unit string) error
	// IsActive reports whether unit is active ("systemctl is-active");
	// an error means systemd could not say.
	IsActive(ctx context.Context, unit string) (bool, error)
}

// Agent runs the firstboot steps. Build one with New and replace fields to
// fake the outside world.
type Agent struct {
	Paths Paths
	// Stdout receives the console lines (the units route it to the console).
	Stdout io.Writer
	Log    *slog.Logger
	// Getenv reads the agent's environment (CREDENTIALS_DIRECTORY).
	Getenv func(string) string
	// Environ is the environment scripts inherit before cluster.env.
	Environ func() []string
	// InterfaceAddrs lists the addresses assigned to local interfaces.
	InterfaceAddrs func() ([]net.Addr, error)
	// Interfaces lists the host's network links (nil: net.Interfaces).
	Interfaces func() ([]net.Interface, error)
	Systemd    Systemd
	// Now stamps the joined marker. Retry budgets use the monotonic clock.
	Now func() time.Time
	// IPDetectRetry is the retry policy for ip-detect.
	IPDetectRetry Backoff
	// WatchNet, when set, opens a watch on the host's addresses and routes
	// so ip-detect retries as soon as they change; nil retries on the
	// backoff timer only.
	WatchNet func() (NetWatch, error)
	// JoinPoll is the interval between join checks.
	JoinPoll time.Duration
	// JoinTimeout overrides JOIN_TIMEOUT from cluster.env when positive.
	JoinTimeout time.Duration
}
