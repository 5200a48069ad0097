package boottest

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

func TestParseNodesAndLinkAddresses(t *testing.T) {
	nodes, err := ParseNodes("agent=2, master=1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Spec{Image: "x", Nodes: nodes}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"agent-1 agent 192.168.76.21", "agent-2 agent 192.168.76.22", "master-1 master 192.168.76.11"}
	for i, n := range s.Nodes {
		if got := n.Name + " " + n.Role + " " + n.LinkIP; got != want[i] {
			t.Errorf("node %d: %s, want %s", i, got, want[i])
		}
	}
	for _, bad := range []string{"", "master", "master=-1", "boss=1", "master=1,master=2", "master=99"} {
		if _, err := ParseNodes(bad); err == nil {
			t.Errorf("ParseNodes(%q) accepted", bad)
		}
	}
	if _, err := (Spec{Image: "x", Persistent: true, Nodes: nodes}).withDefaults(); err == nil || !strings.Contains(err.Error(), "persistent") {
		t.Errorf("persistent with 3 nodes: %v", err)
	}
	if _, err := (Spec{Image: "x", Nodes: []Node{{Name: "a"}, {Name: "a"}}}).withDefaults(); err == nil || !strings.Contains(err.Error(), `name "a"`) {
		t.Errorf("duplicate names: %v", err)
	}
	if _, err := (Spec{Image: "x", Nodes: []Node{{LinkIP: "10.1.1.1"}, {}}}).withDefaults(); err == nil || !strings.Contains(err.Error(), "192.168.76.0/24") {
		t.Errorf("link IP outside the link: %v", err)
	}
	// One node: no link.
	s, _ = Spec{Image: "x"}.withDefaults()
	if len(s.Nodes) != 1 || s.Nodes[0].LinkIP != "" || s.Nodes[0].Name != "node-1" {
		t.Errorf("default node: %+v", s.Nodes)
	}
}

func TestCredentialsWriteTheLinkNetwork(t *testing.T) {
	c := credentials(Node{Role: "agent", LinkIP: "192.168.76.21", Credentials: map[string]string{"x.y": "1"}}, 2)
	if c["cluster.role"] != "agent" || c["x.y"] != "1" {
		t.Errorf("credentials: %v", c)
	}
	tf := c["tmpfiles.extra"]
	for _, w := range []string{"f /run/systemd/network/10-imagebuilder-test-link.network ", `MACAddress=52:54:00:76:00:03\n`, `Address=192.168.76.21/24\n`} {
		if !strings.Contains(tf, w) {
			t.Errorf("tmpfiles.extra lacks %q: %s", w, tf)
		}
	}
	if strings.Contains(tf, "\n") {
		t.Errorf("tmpfiles.extra must be one line (escaped newlines): %q", tf)
	}
}

func TestReportVerdictAndJUnit(t *testing.T) {
	rep := &Report{Image: "host.qcow2", Nodes: []*NodeReport{
		{Name: "master-1", Role: "master", IP: "192.168.76.11", JoinedSeconds: 20.5,
			Phases: []Phase{{"firmware", 3}, {"join", 1.5}},
			Cases:  []Case{{Name: CaseJoined, Passed: true}, {Name: CaseNoFailed, Passed: true}}},
		{Name: "agent-1", Role: "agent", ConsoleTail: "cluster-firstboot: FAILED: boom <&>\x01",
			Cases: []Case{{Name: CaseJoined, Reason: "firstboot failed: boom\nmore"}, {Name: CheckCase("true"), Passed: true}}},
	}}
	if rep.Passed() {
		t.Error("report with a failure passed")
	}
	if v := rep.Nodes[0].Verdict(); v != "PASS master-1 (master, 192.168.76.11): 2/2 cases, joined 20.5s after power-on [firmware 3.0s, join 1.5s]" {
		t.Errorf("verdict: %s", v)
	}
	if v := rep.Nodes[1].Verdict(); v != "FAIL agent-1 (agent): 1 of 2 cases failed: firstboot joined: firstboot failed: boom" {
		t.Errorf("verdict: %s", v)
	}
	var buf bytes.Buffer
	if err := rep.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if doc.Tests != 4 || doc.Failures != 1 || len(doc.Suites) != 2 {
		t.Fatalf("counts: %+v", doc)
	}
	f := doc.Suites[1].Cases[0].Failure
	if f == nil || f.Message != "firstboot failed: boom" || !strings.Contains(f.Body, "more") || !strings.Contains(f.Body, "FAILED: boom <&>") {
		t.Errorf("failure: %+v", f)
	}
}
