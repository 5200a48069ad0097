package qemutests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"imagebuilder/imagebuilder/boottest"
	"imagebuilder/imagebuilder/qemu"
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

// etcdMembers lists, from the master's etcd, the members and the hosts'
// registration keys (run in a guest through the harness's channel).
const etcdMembers = "/opt/cluster/bin/etcdctl --endpoints http://192.168.76.11:2379 member list && /opt/cluster/bin/etcdctl --endpoints http://192.168.76.11:2379 get --prefix --keys-only /cluster/members/"

// TestClusterOneImageThreeRoles boots one image as 2 agents and 1 master
// (copy-on-write overlays, role by SMBIOS credential), on two NICs each, in
// any order: the agents first, the master 60 s later, so the agents wait
// for it. It asserts through the harness that all three join with their
// link address without intervention, that the join check passes from the
// master's side, and reads the membership from the master's etcd: the
// master is an etcd member and every host's key is there.
func TestClusterOneImageThreeRoles(t *testing.T) {
	t.Parallel()
	img := artifact(t, buildImage(t, clusterBundleConfig(t, clusterConfig, ""), "", "qcow2"), "qcow2")
	nodes, err := boottest.ParseNodes("master=1,agent=2")
	if err != nil {
		t.Fatal(err)
	}
	const masterLate = 60 * time.Second
	nodes[0].Delay = masterLate
	// The master's etcd also answers on its user-mode NIC (restrict=on:
	// only this host reaches it), forwarded from a loopback port, so the
	// test reads the membership over etcd's own HTTP gateway.
	port := freeTCPPort(t)
	var seen etcdView
	nodes[0].Credentials = map[string]string{"cluster.etcd-listen-client-urls": "http://0.0.0.0:2379"}
	nodes[0].HostFwd = []qemu.HostFwd{{HostPort: port, GuestPort: 2379}}
	nodes[0].HostChecks = []boottest.HostCheck{{Name: "etcd over hostfwd", Run: func(ctx context.Context) (string, error) {
		v, err := readEtcd(ctx, fmt.Sprintf("http://127.0.0.1:%d", port))
		seen = v
		return v.String(), err
	}}}
	rep := runBoottest(t, boottest.Spec{Image: img, Nodes: nodes, Timeout: 8 * time.Minute,
		Checks: []string{"systemctl is-active clusterd-master.service cluster-etcd.service || systemctl is-active clusterd-agent.service", etcdMembers}})
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
		if n.Role == "agent" && n.JoinedSeconds < masterLate.Seconds() {
			t.Errorf("%s joined %.1fs after power-on, before its master was even started", n.Name, n.JoinedSeconds)
		}
	}
	requireCase(t, rep.Nodes[0], boottest.HostCheckCase("etcd over hostfwd"), true)
	if len(seen.Members) != 1 || seen.Members[0].Name != "192.168.76.11" ||
		!slices.Equal(seen.Members[0].PeerURLs, []string{"http://192.168.76.11:2380"}) ||
		!slices.Equal(seen.Members[0].ClientURLs, []string{"http://192.168.76.11:2379"}) {
		t.Errorf("etcd member list over the hostfwd port: %+v, want the master alone, advertising its link address", seen.Members)
	}
	for _, want := range []struct{ ip, role string }{{"192.168.76.11", "master"}, {"192.168.76.21", "agent"}, {"192.168.76.22", "agent"}} {
		if got := seen.Keys["/cluster/members/"+want.ip]; !strings.Contains(got, `"role":"`+want.role+`"`) {
			t.Errorf("etcd over the hostfwd port: /cluster/members/%s = %q, want a registration as %s", want.ip, got, want.role)
		}
	}
	c := requireCase(t, rep.Nodes[0], boottest.CheckCase(etcdMembers), true)
	for _, w := range []string{"started, 192.168.76.11, http://192.168.76.11:2380, http://192.168.76.11:2379", "/cluster/members/192.168.76.11", "/cluster/members/192.168.76.21", "/cluster/members/192.168.76.22"} {
		if !strings.Contains(c.Output, w) {
			t.Errorf("the master's etcd lacks %q:\n%s", w, c.Output)
		}
	}
}

// TestClusterPowerCutMidJoin cuts the power of an agent while firstboot
// waits for its master (no master runs yet), then boots the same disk again
// with the master: the agent completes its join (a fresh join, not
// "already joined": the cut left no marker behind).
func TestClusterPowerCutMidJoin(t *testing.T) {
	t.Parallel()
	img := artifact(t, buildImage(t, clusterBundleConfig(t, clusterConfig, ""), "", "qcow2"), "qcow2")
	agentDisk := filepath.Join(t.TempDir(), "agent.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img, agentDisk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	agent := boottest.Node{Name: "agent-1", Role: "agent", LinkIP: "192.168.76.21", Disk: agentDisk, Persistent: true}
	rep := runBoottest(t, boottest.Spec{Image: img, Nodes: []boottest.Node{agent},
		PowerCutAt: `cluster-firstboot: role agent`, ArtifactsDir: filepath.Join(t.TempDir(), "cut")})
	if !rep.Passed() {
		t.Fatalf("power cut: %s\n%s", rep.Nodes[0].Verdict(), rep.Nodes[0].ConsoleTail)
	}
	rep = runBoottest(t, boottest.Spec{Image: img, Timeout: 8 * time.Minute, Nodes: []boottest.Node{
		{Name: "master-1", Role: "master", LinkIP: "192.168.76.11"}, agent}})
	for _, n := range rep.Nodes {
		if !n.Passed() {
			t.Errorf("after the power cut: %s\n%s", n.Verdict(), n.ConsoleTail)
		}
	}
	if a := rep.Nodes[1]; !strings.Contains(a.JoinLine, "cluster-firstboot: joined cluster lab as agent with IP 192.168.76.21") {
		t.Errorf("agent after the power cut: join line %q, want a fresh join", a.JoinLine)
	}
}

// ipDetectModes is an ip-detect that misbehaves as the node's credential
// test.ipdetect says, and otherwise takes the route to the master.
const ipDetectModes = `#!/bin/sh
mode=$(cat /run/credentials/@system/test.ipdetect 2>/dev/null || echo route)
case $mode in
hang) sleep 600 ;;
garbage) echo 'eth0:<BROADCAST,UP>' ;;
foreign) echo 203.0.113.7 ;;
*) . /opt/cluster/etc/cluster.env; ip -4 route get "${MASTER_LIST%% *}" | sed -n 's/.* src \([0-9.]*\).*/\1/p' ;;
esac
`

// fixedIPDetect is the corrected ip-detect delivered as the credential
// cluster.ip-detect: the route to the first master.
const fixedIPDetect = `#!/bin/sh
. /opt/cluster/etc/cluster.env
ip -4 route get "${MASTER_LIST%% *}" | sed -n 's/.* src \([0-9.]*\).*/\1/p'
`

// TestIPDetectFailuresNeverJoin boots one image three times, with an
// ip-detect that hangs, prints garbage or prints an address that is not on
// the host: none may join, and the report and the journal say why. Then
// the garbage host's own disk boots again, its bundled ip-detect still
// broken, with a fixed ip-detect as the credential cluster.ip-detect: it
// joins (the recovery path of firstboot/README.md, no rebuild).
func TestIPDetectFailuresNeverJoin(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(clusterConfig, "ip_detect_timeout: 30s", "ip_detect_timeout: 2s", 1)
	img := artifact(t, buildImage(t, clusterBundleConfig(t, cfg, ipDetectModes), "master", "qcow2"), "qcow2")
	want := map[string]string{
		"hang":    "timed out after 2s",
		"garbage": `printed "eth0:<BROADCAST,UP>\n": that is not an IP address`,
		"foreign": `printed "203.0.113.7\n", which is not assigned to any local interface`,
	}
	// The garbage host keeps its disk (and the master's link address, the
	// one master_list names) for the recovery boot.
	garbageDisk := filepath.Join(t.TempDir(), "garbage.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img, garbageDisk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	var nodes []boottest.Node
	for _, mode := range []string{"hang", "garbage", "foreign"} {
		n := boottest.Node{Name: mode, Credentials: map[string]string{"test.ipdetect": mode}}
		if mode == "garbage" {
			n.Disk, n.Persistent, n.LinkIP = garbageDisk, true, "192.168.76.11"
		}
		nodes = append(nodes, n)
	}
	const noState = "test ! -e /var/lib/cluster/joined && test ! -e /var/lib/cluster/ip && test ! -e /run/cluster/ip.env"
	rep := runBoottest(t, boottest.Spec{Image: img, Nodes: nodes, Timeout: 8 * time.Minute, Checks: []string{noState}})
	for _, n := range rep.Nodes {
		c := requireCase(t, n, boottest.CaseJoined, false)
		if !strings.Contains(c.Reason, "firstboot failed: ip-detect /opt/cluster/etc/ip-detect gave no usable IP") || !strings.Contains(c.Reason, want[n.Name]) {
			t.Errorf("%s: reason %q lacks %q", n.Name, c.Reason, want[n.Name])
		}
		requireCase(t, n, boottest.CheckCase(noState), true)
		j, err := os.ReadFile(n.Journal)
		if err != nil || !strings.Contains(string(j), want[n.Name]) {
			t.Errorf("%s: the journal excerpt does not say why (%v)", n.Name, err)
		}
	}

	// Recovery: the same disk, the same broken bundle, a fixed ip-detect.
	fixed := nodes[1]
	fixed.Credentials = map[string]string{"test.ipdetect": "garbage", "cluster.ip-detect": fixedIPDetect}
	rep = runBoottest(t, boottest.Spec{Image: img, Nodes: []boottest.Node{fixed}, Timeout: 5 * time.Minute,
		ExpectConsole: []string{`cluster-firstboot: ip-detect from credential cluster.ip-detect replaces /opt/cluster/etc/ip-detect`},
		Checks:        []string{"test -s /var/lib/cluster/joined && cat /var/lib/cluster/ip"}})
	n := rep.Nodes[0]
	if !n.Passed() {
		t.Fatalf("recovery boot with a fixed ip-detect: %s\n%s", n.Verdict(), n.ConsoleTail)
	}
	if !strings.Contains(n.JoinLine, "cluster-firstboot: joined cluster lab as master with IP 192.168.76.11") {
		t.Errorf("recovery boot: join line %q, want a fresh join as master with 192.168.76.11", n.JoinLine)
	}
	requireCase(t, n, boottest.CaseClusterSide, true)
	t.Logf("recovered host: boot to joined %.1fs", n.JoinedSeconds)
}

// freeTCPPort is a loopback port free right now.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// etcdView is what the test reads from etcd's v3 JSON gateway.
type etcdView struct {
	Members []struct {
		Name       string   `json:"name"`
		PeerURLs   []string `json:"peerURLs"`
		ClientURLs []string `json:"clientURLs"`
	} `json:"members"`
	// Keys are the registrations under /cluster/members/ (key -> value).
	Keys map[string]string
}

func (v etcdView) String() string {
	b, _ := json.Marshal(v)
	return string(b)
}

// readEtcd reads the member list (POST /v3/cluster/member/list) and the
// keys under /cluster/members/ (POST /v3/kv/range) from etcd at url.
func readEtcd(ctx context.Context, url string) (etcdView, error) {
	v := etcdView{Keys: map[string]string{}}
	post := func(path string, req, resp any) error {
		body, _ := json.Marshal(req)
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(r)
		if err != nil {
			return fmt.Errorf("POST %s: %w", path, err)
		}
		defer res.Body.Close()
		data, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s: %s %s (%v)", path, res.Status, data, err)
		}
		if err := json.Unmarshal(data, resp); err != nil {
			return fmt.Errorf("POST %s: %w: %s", path, err, data)
		}
		return nil
	}
	if err := post("/v3/cluster/member/list", struct{}{}, &v); err != nil {
		return v, err
	}
	enc := base64.StdEncoding.EncodeToString
	var kv struct {
		Kvs []struct{ Key, Value string } `json:"kvs"`
	}
	if err := post("/v3/kv/range", map[string]string{"key": enc([]byte("/cluster/members/")), "range_end": enc([]byte("/cluster/members0"))}, &kv); err != nil {
		return v, err
	}
	for _, e := range kv.Kvs {
		k, err1 := base64.StdEncoding.DecodeString(e.Key)
		val, err2 := base64.StdEncoding.DecodeString(e.Value)
		if err1 != nil || err2 != nil {
			return v, fmt.Errorf("kv range: undecodable entry %+v", e)
		}
		v.Keys[string(k)] = string(val)
	}
	if len(v.Members) == 0 || len(v.Keys) == 0 {
		return v, fmt.Errorf("etcd at %s answered no members or no keys: %s", url, v)
	}
	return v, nil
}
