package boottest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"imagebuilder/imagebuilder/qemu"
)

// Console markers firstboot prints (see firstboot/agent/console.go).
var (
	joinedRE   = regexp.MustCompile(`cluster-firstboot: (already )?joined cluster (\S+) as (\S+) with IP ([0-9A-Fa-f.:]+)`)
	failedRE   = regexp.MustCompile(`cluster-firstboot: FAILED: `)
	detectedRE = regexp.MustCompile(`cluster-firstboot: detected IP `)
)

// phaseMarkers end the boot phases, in order.
var phaseMarkers = []struct {
	name string
	re   *regexp.Regexp
}{
	{"firmware", regexp.MustCompile(`Linux version \d|EFI stub: `)},
	{"kernel", regexp.MustCompile(`systemd\[1\]: |Welcome to `)},
	{"userspace", regexp.MustCompile(`cluster-ipdetect|Cluster ip-detect`)},
	{"firstboot", detectedRE},
	{"join", joinedRE},
}

// Case names.
const (
	CaseJoined      = "firstboot joined"
	CaseNoFailed    = "no failed systemd units"
	CaseClusterSide = "join check (cluster side)"
)

// CheckCase is the name of the case of a user check.
func CheckCase(cmd string) string { return "check: " + cmd }

// PowerCutCase is the name of the case of Spec.PowerCutAt.
func PowerCutCase(re string) string { return "power cut at: " + re }

// ExpectCase is the name of the case of an expected console line.
func ExpectCase(re string) string { return "console: " + re }

// node is one running VM under test.
type node struct {
	spec    Node
	rep     *NodeReport
	vm      *qemu.VM
	con     *console
	ch      *channel
	chErr   error
	start   time.Time
	dir     string
	joined  bool
	started chan struct{}
}

// Run boots every node of spec, asserts, and returns the report. The error
// is for a run that could not happen (bad spec, QEMU missing); failed
// assertions are in the report. Every VM is killed before Run returns,
// also when ctx is cancelled.
func Run(ctx context.Context, log *slog.Logger, spec Spec) (*Report, error) {
	if spec.Log == nil {
		spec.Log = log
	}
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("test spec: %w", err)
	}
	log = spec.Log
	for _, n := range spec.Nodes {
		if _, err := os.Stat(n.Disk); err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
	}
	artifacts := spec.ArtifactsDir
	if artifacts == "" {
		if artifacts, err = os.MkdirTemp("", "imagebuilder-test-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(artifacts)
	}
	// Unix socket paths must stay short: the channels live in /tmp.
	sockDir, err := os.MkdirTemp("", "ibt-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(sockDir)

	accel := spec.Accel
	if accel == "auto" {
		accel = "tcg"
		if err := qemu.ProbeKVM(ctx, qemu.Config{}, 0); err != nil {
			log.Info("KVM not usable, using TCG", "reason", err)
		} else {
			accel = "kvm"
		}
	}
	rep := &Report{Image: spec.Image, Accel: accel}

	var hub *qemu.Hub
	linked := false
	for _, n := range spec.Nodes {
		linked = linked || n.LinkIP != ""
	}
	if linked {
		if hub, err = qemu.NewHub(log); err != nil {
			return nil, err
		}
		defer hub.Close()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodes := make([]*node, len(spec.Nodes))
	for i, ns := range spec.Nodes {
		dir := filepath.Join(artifacts, ns.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		n := &node{spec: ns, dir: dir, started: make(chan struct{}),
			rep: &NodeReport{Name: ns.Name, Role: ns.Role, LinkIP: ns.LinkIP, ConsoleLog: filepath.Join(dir, "console.log")}}
		nodes[i] = n
		rep.Nodes = append(rep.Nodes, n.rep)
	}
	defer func() {
		for _, n := range nodes {
			if n.vm != nil {
				if err := n.vm.Kill(); err != nil {
					log.Error("killing VM", "node", n.spec.Name, "err", err)
				}
				// The overlay and firmware variables are not artifacts.
				os.RemoveAll(filepath.Join(n.dir, "vm"))
			}
			if n.ch != nil {
				n.ch.close()
			}
		}
	}()

	ns := func(i int) Node { return spec.Nodes[i] }
	// Boot and wait for firstboot on every node at once: agents wait for
	// their masters, so nodes must run side by side.
	var wg sync.WaitGroup
	var startErr error
	var startMu sync.Mutex
	for i, n := range nodes {
		cfg := qemu.Config{
			Disk: ns(i).Disk, Snapshot: !ns(i).Persistent, Accel: accel, Memory: spec.Memory, CPUs: spec.CPUs,
			WorkDir: filepath.Join(n.dir, "vm"), ConsoleLog: n.rep.ConsoleLog, Log: log.With("node", n.spec.Name),
			SerialPorts:       []qemu.SerialPort{{Name: ChannelName, Socket: filepath.Join(sockDir, fmt.Sprintf("n%d.sock", i))}},
			SMBIOSCredentials: credentials(n.spec, i),
			NICs:              []qemu.NIC{{HostFwd: ns(i).HostFwd}},
		}
		if hub != nil {
			cfg.NICs = append(cfg.NICs, hub.NIC(linkMAC(i)))
		}
		wg.Go(func() {
			if err := n.boot(ctx, cfg, spec); err != nil {
				startMu.Lock()
				startErr = errors.Join(startErr, fmt.Errorf("node %s: %w", n.spec.Name, err))
				startMu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	if startErr != nil {
		return nil, startErr
	}
	// The cluster's view needs every node up: ask once all joined or gave up.
	if !spec.NoJoin && spec.PowerCutAt == "" {
		for _, n := range nodes {
			wg.Go(func() { n.clusterSide(ctx, spec, nodes) })
		}
		wg.Wait()
	}
	for _, n := range nodes {
		if spec.PowerCutAt == "" {
			wg.Go(func() { n.finish(ctx, spec) })
		} else if n.con != nil {
			n.rep.Phases = n.phases()
			n.rep.ConsoleTail = n.con.tail(40)
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return rep, fmt.Errorf("test interrupted: %w", context.Cause(ctx))
	}
	if spec.ArtifactsDir != "" {
		f, err := os.Create(filepath.Join(spec.ArtifactsDir, "report.json"))
		if err == nil {
			err = errors.Join(rep.WriteJSON(f), f.Close())
		}
		if err != nil {
			return rep, fmt.Errorf("writing report.json: %w", err)
		}
	}
	return rep, nil
}

// linkMAC is node i's MAC on the link (locally administered, QEMU's OUI).
func linkMAC(i int) string { return fmt.Sprintf("52:54:00:76:00:%02x", i+1) }

// credentials are the SMBIOS credentials of node i: its role, its link
// address (a networkd .network file written by systemd-tmpfiles from the
// tmpfiles.extra credential, before networkd starts) and the extra ones.
func credentials(n Node, i int) map[string]string {
	c := map[string]string{}
	for k, v := range n.Credentials {
		c[k] = v
	}
	if n.Role != "" {
		c["cluster.role"] = n.Role
	}
	if n.LinkIP != "" {
		network := "[Match]\\nMACAddress=" + linkMAC(i) + "\\n\\n[Network]\\nAddress=" + n.LinkIP + "/24\\nLinkLocalAddressing=no\\nIPv6AcceptRA=no\\n"
		c["tmpfiles.extra"] = "f /run/systemd/network/10-imagebuilder-test-link.network 0644 root root - " + network
	}
	return c
}
