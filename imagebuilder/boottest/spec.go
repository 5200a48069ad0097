package boottest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"imagebuilder/imagebuilder/qemu"
)

// Roles a node may have (the image's firstboot knows them).
var Roles = []string{"master", "agent", "agent_public"}

// Spec says what to boot and what to assert.
type Spec struct {
	// Image is a bootable disk image (raw or qcow2) made by imagebuilder.
	Image string
	// Nodes to boot from Image; empty is one node with the image's baked
	// role.
	Nodes []Node
	// Timeout bounds each node's boot up to the joined line (default 5m).
	Timeout time.Duration
	// CheckTimeout bounds each command run in the guest (default 2m).
	CheckTimeout time.Duration
	// Checks are shell commands run in every node after its join; each
	// passes when it exits 0.
	Checks []string
	// ExpectConsole are regular expressions that must each match a line
	// of every node's console by the end of the join phase.
	ExpectConsole []string
	// ArtifactsDir, when set, keeps per node the console log, a journal
	// excerpt, the report (report.json) and, by default of the caller,
	// the JUnit file. Empty uses a temporary directory, removed after.
	ArtifactsDir string
	// Accel is auto (default: KVM when a probe shows it works, else TCG),
	// kvm or tcg.
	Accel string
	// Memory (MiB, default 1024) and CPUs (default 1) per node.
	Memory, CPUs int
	// Prefix is where the bundle is installed in the image (default
	// /opt/cluster); the cluster-side join check runs from there.
	Prefix string
	// LinkNet is the /24 of the link between nodes (default
	// 192.168.76.0/24); see Node.LinkIP.
	LinkNet string
	// Persistent boots the image itself instead of an overlay, so a second
	// Run sees what the first wrote (a reboot). Only with one node; see
	// Node.Persistent for one node among several.
	Persistent bool
	// PowerCutAt, when set, is a regular expression: as soon as a console
	// line of a node matches it, that VM is killed without a shutdown (a
	// power cut) and the node's only case says whether the line came.
	// With persistent disks the next Run shows what the host makes of it.
	PowerCutAt string
	// NoJoin skips the join assertions, for images without a cluster
	// (the console, unit and user checks still run).
	NoJoin bool
	// Log receives progress; nil discards.
	Log *slog.Logger
}

// Node is one VM.
type Node struct {
	// Name identifies the node in reports and artifacts (default
	// ROLE-N).
	Name string
	// Role is passed as the systemd credential cluster.role; empty leaves
	// the image's baked role.
	Role string
	// LinkIP is the node's address on the link between nodes; with
	// several nodes and no LinkIP, masters get .11, .12, … and other roles
	// .21, .22, … of LinkNet, in order.
	LinkIP string
	// Delay holds the node back after the first ones start (to boot
	// agents before their masters).
	Delay time.Duration
	// Credentials are extra systemd credentials (SMBIOS type 11).
	Credentials map[string]string
	// Disk boots this image instead of Spec.Image.
	Disk string
	// Persistent writes to the node's disk instead of an overlay.
	Persistent bool
	// HostFwd forwards loopback ports of the host to the node's user-mode
	// NIC (restrict=on: only the host reaches it), e.g. to its etcd.
	HostFwd []qemu.HostFwd
	// HostChecks run on the host after the join, while the node runs
	// (against a HostFwd port); each is a case "host check: NAME".
	HostChecks []HostCheck
}

// HostCheck is an assertion the test runs on the host while the VMs are
// up. Run returns what it saw (the case's output) and an error when the
// check fails.
type HostCheck struct {
	Name string
	Run  func(ctx context.Context) (string, error)
}

// HostCheckCase is the name of the case of a host check.
func HostCheckCase(name string) string { return "host check: " + name }

// ParseNodes reads "master=1,agent=2" into nodes named master-1, agent-1,
// agent-2, in that order.
func ParseNodes(s string) ([]Node, error) {
	var nodes []Node
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		role, count, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(count)
		if !ok || err != nil || n < 0 || n > 16 {
			return nil, fmt.Errorf("nodes %q: %q is not ROLE=COUNT with a count of 0 to 16", s, part)
		}
		if !validRole(role) {
			return nil, fmt.Errorf("nodes %q: role %q: want one of %s", s, role, strings.Join(Roles, ", "))
		}
		if seen[role] {
			return nil, fmt.Errorf("nodes %q: role %q given twice", s, role)
		}
		seen[role] = true
		for i := 1; i <= n; i++ {
			nodes = append(nodes, Node{Name: fmt.Sprintf("%s-%d", role, i), Role: role})
		}
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("nodes %q: no nodes", s)
	}
	return nodes, nil
}

func validRole(r string) bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

var nodeNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// withDefaults fills defaults and checks the spec, reporting every
// problem at once.
func (s Spec) withDefaults() (Spec, error) {
	var errs []error
	if s.Image == "" {
		missing := len(s.Nodes) == 0
		for _, n := range s.Nodes {
			missing = missing || n.Disk == ""
		}
		if missing {
			errs = append(errs, errors.New("image: required"))
		}
	}
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Minute
	}
	if s.CheckTimeout == 0 {
		s.CheckTimeout = 2 * time.Minute
	}
	if s.Timeout < 0 || s.CheckTimeout < 0 {
		errs = append(errs, errors.New("timeouts must be positive"))
	}
	if s.Accel == "" {
		s.Accel = "auto"
	}
	if s.Memory == 0 {
		s.Memory = 1024
	}
	if s.CPUs == 0 {
		s.CPUs = 1
	}
	if s.Prefix == "" {
		s.Prefix = "/opt/cluster"
	}
	if !strings.HasPrefix(s.Prefix, "/") || strings.ContainsAny(s.Prefix, " '\"\\$`;\n") {
		errs = append(errs, fmt.Errorf("prefix %q: want an absolute path without spaces or shell characters", s.Prefix))
	}
	if s.LinkNet == "" {
		s.LinkNet = "192.168.76.0/24"
	}
	link, err := netip.ParsePrefix(s.LinkNet)
	if err != nil || !link.Addr().Is4() || link.Bits() != 24 {
		errs = append(errs, fmt.Errorf("link net %q: want an IPv4 /24", s.LinkNet))
	}
	for _, e := range s.ExpectConsole {
		if _, err := regexp.Compile(e); err != nil {
			errs = append(errs, fmt.Errorf("expected console line %q: %w", e, err))
		}
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if len(s.Nodes) == 0 {
		s.Nodes = []Node{{}}
	}
	if s.Persistent && len(s.Nodes) > 1 {
		errs = append(errs, errors.New("persistent: only with one node (nodes would write the same disk); use Node.Persistent with Node.Disk"))
	}
	if s.PowerCutAt != "" {
		if _, err := regexp.Compile(s.PowerCutAt); err != nil {
			errs = append(errs, fmt.Errorf("power cut at %q: %w", s.PowerCutAt, err))
		}
	}
	written := map[string]string{}
	nodes := make([]Node, len(s.Nodes))
	counts := map[string]int{}
	names := map[string]bool{}
	nextMaster, nextOther := 11, 21
	for i, n := range s.Nodes {
		if n.Role != "" && !validRole(n.Role) {
			errs = append(errs, fmt.Errorf("node %d: role %q: want one of %s", i, n.Role, strings.Join(Roles, ", ")))
		}
		if n.Name == "" {
			r := n.Role
			if r == "" {
				r = "node"
			}
			counts[r]++
			n.Name = fmt.Sprintf("%s-%d", r, counts[r])
		}
		if !nodeNameRe.MatchString(n.Name) || names[n.Name] {
			errs = append(errs, fmt.Errorf("node %d: name %q: want a unique name of letters, digits, '.', '_', '-'", i, n.Name))
		}
		names[n.Name] = true
		if len(s.Nodes) > 1 && n.LinkIP == "" && link.IsValid() {
			host := &nextOther
			if n.Role == "master" {
				host = &nextMaster
			}
			b := link.Masked().Addr().As4()
			b[3] = byte(*host)
			*host++
			n.LinkIP = netip.AddrFrom4(b).String()
		}
		if n.LinkIP != "" {
			ip, err := netip.ParseAddr(n.LinkIP)
			if err != nil || !link.Contains(ip) {
				errs = append(errs, fmt.Errorf("node %s: link IP %q: want an address in %s", n.Name, n.LinkIP, s.LinkNet))
			}
		}
		if n.Disk == "" {
			n.Disk = s.Image
		}
		if s.Persistent {
			n.Persistent = true
		}
		if n.Persistent {
			if other, ok := written[n.Disk]; ok {
				errs = append(errs, fmt.Errorf("nodes %s and %s would both write %s", other, n.Name, n.Disk))
			}
			written[n.Disk] = n.Name
		}
		for _, h := range n.HostChecks {
			if h.Name == "" || h.Run == nil {
				errs = append(errs, fmt.Errorf("node %s: a host check needs a name and a function", n.Name))
			}
		}
		if n.Delay < 0 {
			errs = append(errs, fmt.Errorf("node %s: negative delay", n.Name))
		}
		nodes[i] = n
	}
	s.Nodes = nodes
	return s, errors.Join(errs...)
}
