package qemutests

import (
	"strings"
	"testing"
	"time"

	"imagebuilder/imagebuilder/boottest"
)

// clusterConfig is a cluster whose one master sits on the link between
// the VMs (boottest gives masters .11, other roles .21, .22, … of
// 192.168.76.0/24). Every VM also has a user-mode NIC with 10.0.2.15, so
// ip-detect must pick the interface on the route to the master.
const clusterConfig = `cluster_name: lab
prefix: /opt/cluster
master_discovery: static
master_list:
  - 192.168.76.11
ip_detect_path: ip-detect
ip_detect_timeout: 30s
join_timeout: 10m
`

// TestClusterOneImageThreeRoles boots one image as 1 master and 2 agents
// (copy-on-write overlays, role by SMBIOS credential), on two NICs each,
// and asserts through the harness that all three join with their link
// address and that the master's registry lists each of them.
func TestClusterOneImageThreeRoles(t *testing.T) {
	t.Parallel()
	img := artifact(t, buildImage(t, clusterBundleConfig(t, clusterConfig, ""), "", "qcow2"), "qcow2")
	nodes, err := boottest.ParseNodes("master=1,agent=2")
	if err != nil {
		t.Fatal(err)
	}
	rep := runBoottest(t, boottest.Spec{Image: img, Nodes: nodes, Timeout: 8 * time.Minute,
		Checks: []string{"systemctl is-active clusterd-master.service || systemctl is-active clusterd-agent.service"}})
	for _, n := range rep.Nodes {
		if !n.Passed() {
			t.Errorf("%s\nconsole tail:\n%s", n.Verdict(), n.ConsoleTail)
			continue
		}
		if n.IP != n.LinkIP || !strings.HasPrefix(n.IP, "192.168.76.") {
			t.Errorf("%s joined with IP %s, want its link address %s (ip-detect picked the wrong NIC)", n.Name, n.IP, n.LinkIP)
		}
		requireCase(t, n, boottest.CaseClusterSide, true)
		t.Logf("%s (%s): boot to joined %.1fs", n.Name, n.Role, n.JoinedSeconds)
	}
}
