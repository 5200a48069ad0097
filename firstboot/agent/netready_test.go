package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// linkFile is a link state file as systemd-networkd 252 writes it.
func linkFile(admin, v4, v6 string, extra ...string) string {
	lines := []string{
		"# This is private data. Do not parse.",
		"ADMIN_STATE=" + admin,
		"OPER_STATE=routable",
		"CARRIER_STATE=carrier",
		"ADDRESS_STATE=routable",
		"IPV4_ADDRESS_STATE=" + v4,
		"IPV6_ADDRESS_STATE=" + v6,
		"ONLINE_STATE=partial",
		"REQUIRED_FOR_ONLINE=yes",
		"REQUIRED_OPER_STATE_FOR_ONLINE=degraded:routable",
		"NETWORK_FILE=/etc/systemd/network/80-imagebuilder-dhcp.network",
		"DNS=10.0.2.3 fd00::3",
		"DOMAINS=",
	}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

// TestLinkReady: a managed link holds ip-detect back until it is
// configured or has a routable address of every family asked for.
func TestLinkReady(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		v4, v6 bool
		want   bool
	}{
		{"configured", linkFile("configured", "off", "degraded"), true, false, true},
		{"unmanaged", linkFile("unmanaged", "off", "off"), true, false, true},
		{"failed", linkFile("failed", "off", "off"), true, false, true},
		{"linger", linkFile("linger", "off", "off"), true, false, true},
		{"DHCPv4 lease, IPv6LL pending", linkFile("configuring", "routable", "off"), true, false, true},
		{"IPv4 link-local only", linkFile("configuring", "degraded", "off"), true, false, false},
		{"no address yet", linkFile("configuring", "off", "off"), true, false, false},
		{"IPv6 cluster, IPv4 only", linkFile("configuring", "routable", "degraded"), false, true, false},
		{"IPv6 cluster, routable IPv6", linkFile("configuring", "off", "routable"), false, true, true},
		{"both families, one there", linkFile("configuring", "routable", "degraded"), true, true, false},
		{"both families there", linkFile("configuring", "routable", "routable"), true, true, true},
		{"not required for online", strings.Replace(linkFile("configuring", "off", "off"), "REQUIRED_FOR_ONLINE=yes", "REQUIRED_FOR_ONLINE=no", 1), true, false, true},
		{"pending", linkFile("pending", "off", "off"), true, false, false},
		{"initialized", linkFile("initialized", "off", "off"), true, false, false},
		{"empty file", "", true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "2")
			writeFile(t, p, tc.file, 0o644)
			st, err := readNetworkdState(p)
			if err != nil {
				t.Fatal(err)
			}
			got, why := linkReady(st, tc.v4, tc.v6)
			if got != tc.want {
				t.Errorf("ready = %v (%s), want %v", got, why, tc.want)
			}
			if !got && why == "" {
				t.Error("a link that is not ready must say why")
			}
		})
	}
}

func TestReadNetworkdState(t *testing.T) {
	p := filepath.Join(t.TempDir(), "2")
	writeFile(t, p, linkFile("configuring", "routable", "off"), 0o644)
	st, err := readNetworkdState(p)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"ADMIN_STATE": "configuring", "DNS": "10.0.2.3 fd00::3", "DOMAINS": "",
		"NETWORK_FILE": "/etc/systemd/network/80-imagebuilder-dhcp.network"} {
		if got, ok := st[k]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, want)
		}
	}
	if _, ok := st["# This is private data. Do not parse."]; ok || len(st) != 12 {
		t.Errorf("parsed %d keys (%v), want the 12 assignments", len(st), st)
	}
}

// TestWaitNetwork: under networkd ip-detect waits for the links to have
// the masters' family (read from networkd's link states, not the whole
// of network-online); without networkd, or with no master to take a
// family from, for network-online.target. ip-detect runs after the wait.
func TestWaitNetwork(t *testing.T) {
	tests := []struct {
		name     string
		networkd bool
		masters  string
		links    map[string]string // ifindex -> state file at the start
		later    map[string]string // written 150 ms later
		// wantLater: ip-detect must see the later files' effect.
		wantLater  bool
		wantTarget []string
	}{
		{name: "ready at once", networkd: true, masters: "192.168.76.11",
			links: map[string]string{"1": linkFile("unmanaged", "off", "off"), "2": linkFile("configuring", "routable", "off"), "3": linkFile("configured", "routable", "degraded")}},
		{name: "waits for the DHCP lease", networkd: true, masters: "192.168.76.11",
			links: map[string]string{"2": linkFile("configuring", "off", "off"), "3": linkFile("configuring", "routable", "off")},
			later: map[string]string{"2": linkFile("configuring", "routable", "off")}, wantLater: true},
		{name: "waits for a link networkd has not picked up", networkd: true, masters: "192.168.76.11",
			links: map[string]string{"2": linkFile("configured", "routable", "off")},
			later: map[string]string{"3": linkFile("configuring", "routable", "off")}, wantLater: true},
		{name: "IPv6 masters wait for IPv6", networkd: true, masters: "fd00::11",
			links: map[string]string{"2": linkFile("configuring", "routable", "degraded"), "3": linkFile("configured", "off", "routable")},
			later: map[string]string{"2": linkFile("configuring", "routable", "routable")}, wantLater: true},
		{name: "no networkd", masters: "192.168.76.11", wantTarget: []string{"network-online.target"}},
		{name: "networkd, no masters", networkd: true, wantTarget: []string{"network-online.target"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t)
			if tc.networkd {
				h.write(NetworkdStateFile, "OPER_STATE=routable\n")
				if err := os.MkdirAll(h.agent.Paths.Host(NetworkdLinksDir), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for idx, f := range tc.links {
				h.write(filepath.Join(NetworkdLinksDir, idx), f)
			}
			flag := filepath.Join(t.TempDir(), "later")
			if tc.later != nil {
				go func() {
					time.Sleep(150 * time.Millisecond)
					for idx, f := range tc.later {
						// networkd writes a temporary file and renames it.
						tmp := h.agent.Paths.Host(filepath.Join(NetworkdLinksDir, "."+idx+".tmp"))
						if err := os.WriteFile(tmp, []byte(f), 0o644); err != nil {
							panic(err)
						}
						if err := os.WriteFile(flag, nil, 0o644); err != nil {
							panic(err)
						}
						if err := os.Rename(tmp, h.agent.Paths.Host(filepath.Join(NetworkdLinksDir, idx))); err != nil {
							panic(err)
						}
					}
				}()
			}
			// ip-detect records whether the later state was written.
			ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), `test -e "`+flag+`" && echo later > "$0.order"; echo 10.0.2.15`)
			h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect, `MASTER_LIST="`+tc.masters+`"`)
			if err := h.agent.IPDetect(context.Background()); err != nil {
				t.Fatalf("IPDetect: %v", err)
			}
			order, _ := os.ReadFile(ipDetect + ".order")
			if got := string(order) == "later\n"; got != tc.wantLater {
				t.Errorf("ip-detect ran after the later link states: %v, want %v", got, tc.wantLater)
			}
			if got := h.sd.waited; !reflect.DeepEqual(got, tc.wantTarget) {
				t.Errorf("waited for units %q, want %q", got, tc.wantTarget)
			}
			if got := h.read(IPEnvFile); got != "DETECTED_IP=10.0.2.15\n" {
				t.Errorf("ip.env = %q", got)
			}
		})
	}
}

// TestWaitNetworkdTimeout: links that never get there end the wait with
// an error naming each one and why; the caller then runs ip-detect anyway.
func TestWaitNetworkdTimeout(t *testing.T) {
	h := newTestHost(t)
	h.write(filepath.Join(NetworkdLinksDir, "2"), linkFile("configuring", "off", "off"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := h.agent.waitNetworkd(ctx, true, false)
	if err == nil {
		t.Fatal("waitNetworkd returned nil for links that never get an address")
	}
	for _, want := range []string{"enp0s1: configuring, no routable IPv4 address yet", "enp0s3: networkd has not picked it up yet"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestMasterFamilies(t *testing.T) {
	for list, want := range map[string][2]bool{
		"":                      {false, false},
		"10.0.0.1 10.0.0.2":     {true, false},
		"fd00::1":               {false, true},
		"::ffff:10.0.0.1":       {true, false},
		"10.0.0.1 fd00::1":      {true, true},
		"master-1.example.test": {true, true},
	} {
		env, err := ParseEnv("MASTER_LIST=\"" + list + "\"\n")
		if err != nil {
			t.Fatal(err)
		}
		v4, v6 := masterFamilies(clusterConfig{env: env})
		if [2]bool{v4, v6} != want {
			t.Errorf("MASTER_LIST %q: v4 %v v6 %v, want %v", list, v4, v6, want)
		}
	}
}

// TestIPDetectBudgetOnceLinksConfigured: when networkd's links were
// configured, a failing ip-detect gives up at its retry budget without
// waiting for network-online.target (which nothing of ours pulls in).
func TestIPDetectBudgetOnceLinksConfigured(t *testing.T) {
	h := newTestHost(t)
	h.agent.IPDetectRetry = Backoff{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond, Total: 50 * time.Millisecond}
	h.sd.offline = true
	h.write(NetworkdStateFile, "OPER_STATE=routable\n")
	h.write(filepath.Join(NetworkdLinksDir, "2"), linkFile("configured", "routable", "off"))
	h.write(filepath.Join(NetworkdLinksDir, "3"), linkFile("configuring", "routable", "off"))
	ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), "exit 1")
	h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect, "MASTER_LIST=192.168.76.11")
	start := time.Now()
	err := h.agent.IPDetect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gave no usable IP") {
		t.Fatalf("IPDetect = %v, want it to give up", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("IPDetect gave up only after %s", elapsed)
	}
	if len(h.sd.asked) != 0 || len(h.sd.waited) != 0 {
		t.Errorf("asked systemd about %q and waited for %q, want neither", h.sd.asked, h.sd.waited)
	}
}
