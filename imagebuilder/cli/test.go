package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"imagebuilder/imagebuilder/boottest"
	"imagebuilder/pkgbuild/atomicfile"
)

// errTestFailed makes the exit status 1 after the report was printed.
var errTestFailed = errors.New("boot test failed")

func newTestCmd(g *globals) *cobra.Command {
	var (
		spec    boottest.Spec
		role    string
		nodes   string
		junit   string
		delays  []string
		checks  []string
		expects []string
	)
	cmd := &cobra.Command{
		Use:   "test IMAGE",
		Short: "Boot an image in QEMU and assert that it joins its cluster (for CI)",
		Long: `test boots the image (raw or qcow2) in QEMU — KVM when a short probe shows it
works, TCG otherwise, so it runs on CI runners without KVM — through a
copy-on-write overlay (the image is never written), with restricted
user-mode networking, and asserts from outside the guest. Each assertion is
a named test case:

  firstboot joined              the console shows firstboot's joined line
                                (a FAILED line fails at once, with its reason)
  console: RE                   each --expect regular expression matched a console line
  join check (cluster side)     the role's join check, run on the first master
                                with this node's IP, passes (the cluster lists it)
  no failed systemd units       systemctl lists no failed unit once the boot settled
  check: CMD                    each --check shell command exits 0 in the guest

Commands run in the guest through a virtio-serial port that the image's
cluster-testd serves (no SSH, no keys). With --nodes several VMs boot from
the one image, each with its role as an SMBIOS credential, joined by a
second NIC on an Ethernet hub on loopback: masters get 192.168.76.11, .12, …
and other roles .21, .22, … (set master_list in config.yaml accordingly).

Prints one verdict line per node with timings per phase (firmware, kernel,
userspace, firstboot, join); --junit writes JUnit XML for the CI, and
--artifacts keeps per node the console log, a journal excerpt and
report.json. The exit status is 0 when every case passed, 1 otherwise.
Ctrl-C or --timeout kills every VM it started.`,
		Example: `  # one node, the role baked into the image
  imagebuilder test build/images/host.qcow2 --junit report.xml --artifacts test-artifacts

  # one image, three roles, a check in every guest and a console line to expect
  imagebuilder test host.qcow2 --nodes master=1,agent=2 --timeout 8m \
      --check 'systemctl is-active clusterd-master.service || systemctl is-active clusterd-agent.service' \
      --expect 'cluster-firstboot: detected IP 192\.168\.76\.'

  # agents first, the master two minutes later (hosts come up in any order)
  imagebuilder test host.qcow2 --nodes master=1,agent=2 --delay master-1=2m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Image = args[0]
			spec.Checks, spec.ExpectConsole = checks, expects
			if nodes != "" && role != "" {
				return errors.New("--role and --nodes are exclusive: --nodes gives every node its role")
			}
			if nodes != "" {
				var err error
				if spec.Nodes, err = boottest.ParseNodes(nodes); err != nil {
					return fmt.Errorf("--nodes: %w", err)
				}
			} else {
				spec.Nodes = []boottest.Node{{Role: role}}
			}
			for _, d := range delays {
				name, v, ok := strings.Cut(d, "=")
				dur, err := time.ParseDuration(v)
				if !ok || err != nil || dur < 0 {
					return fmt.Errorf("--delay %q: want NODE=DURATION, e.g. master-1=2m", d)
				}
				found := false
				for i := range spec.Nodes {
					if spec.Nodes[i].Name == name {
						spec.Nodes[i].Delay, found = dur, true
					}
				}
				if !found {
					return fmt.Errorf("--delay %q: no node %q (nodes are named ROLE-N by --nodes)", d, name)
				}
			}
			if spec.ArtifactsDir != "" {
				if err := os.MkdirAll(spec.ArtifactsDir, 0o755); err != nil {
					return fmt.Errorf("--artifacts: %w", err)
				}
			}
			log := g.logger()
			rep, runErr := boottest.Run(cmd.Context(), log, spec)
			if rep == nil {
				return runErr
			}
			if junit != "" {
				if err := writeJUnit(junit, rep); err != nil {
					return err
				}
			}
			if g.json {
				if err := g.printJSON(rep); err != nil {
					return err
				}
			} else {
				rep.WriteText(g.stdout)
				for _, n := range rep.Nodes {
					for _, c := range n.Failed() {
						fmt.Fprintf(g.stderr, "\n%s: %s:\n  %s\n", n.Name, c.Name, strings.ReplaceAll(strings.TrimSpace(c.Reason), "\n", "\n  "))
					}
					if !n.Passed() && n.ConsoleTail != "" {
						fmt.Fprintf(g.stderr, "\n%s: console tail:\n  %s\n", n.Name, strings.ReplaceAll(n.ConsoleTail, "\n", "\n  "))
					}
				}
			}
			if runErr != nil {
				return runErr
			}
			if !rep.Passed() {
				return errTestFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "one node with this role (SMBIOS credential cluster.role); default: the role baked into the image")
	f.StringVar(&nodes, "nodes", "", "boot several nodes, e.g. master=1,agent=2 (named master-1, agent-1, agent-2)")
	f.StringArrayVar(&delays, "delay", nil, "NODE=DURATION: start that node later (repeatable)")
	f.DurationVar(&spec.Timeout, "timeout", 5*time.Minute, "per node: power-on to the joined line")
	f.DurationVar(&spec.CheckTimeout, "check-timeout", 2*time.Minute, "per command run in the guest")
	f.StringArrayVar(&checks, "check", nil, "shell command that must exit 0 in every guest (repeatable)")
	f.StringArrayVar(&expects, "expect", nil, "regular expression that must match a console line of every node (repeatable)")
	f.StringVar(&junit, "junit", "", "write JUnit XML here")
	f.StringVar(&spec.ArtifactsDir, "artifacts", "", "keep console logs, journal excerpts and report.json here, one folder per node")
	f.StringVar(&spec.Accel, "accel", "auto", "accelerator: auto (probe KVM, else TCG), kvm or tcg")
	f.IntVar(&spec.Memory, "memory", 1024, "guest memory in MiB per node")
	f.IntVar(&spec.CPUs, "cpus", 1, "guest CPUs per node")
	f.StringVar(&spec.Prefix, "prefix", "/opt/cluster", "where the bundle is installed in the image")
	f.BoolVar(&spec.NoJoin, "no-join", false, "the image has no cluster: skip the join cases")
	return cmd
}

func writeJUnit(path string, rep *boottest.Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return rep.WriteJUnit(w) })
}
