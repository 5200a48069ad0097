package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestWaitNetwork: under networkd ip-detect waits with wait-online for the
// masters' family only; without networkd, or with masters of both
// families, for network-online.target. ip-detect runs after the wait.
func TestWaitNetwork(t *testing.T) {
	tests := []struct {
		name       string
		networkd   bool
		waitOnline string // "" for none, else where it lives
		masters    string
		failWait   bool
		wantArgs   string   // wait-online's arguments, "" when it must not run
		wantTarget []string // units Start waited for
	}{
		{name: "networkd ipv4 masters", networkd: true, waitOnline: networkdWaitLib, masters: "192.168.76.11 192.168.76.12", wantArgs: "-4"},
		{name: "networkd ipv6 masters, /usr/lib", networkd: true, waitOnline: networkdWaitUsr, masters: "fd00::11", wantArgs: "-6"},
		{name: "networkd mixed masters", networkd: true, waitOnline: networkdWaitLib, masters: "192.168.76.11 fd00::11",
			wantTarget: []string{"network-online.target"}},
		{name: "no networkd", waitOnline: networkdWaitLib, masters: "192.168.76.11", wantTarget: []string{"network-online.target"}},
		{name: "networkd without wait-online", networkd: true, masters: "192.168.76.11", wantTarget: []string{"network-online.target"}},
		{name: "wait-online fails: ip-detect runs anyway", networkd: true, waitOnline: networkdWaitLib, masters: "192.168.76.11",
			failWait: true, wantArgs: "-4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t)
			if tc.networkd {
				h.write(NetworkdStateFile, "OPER_STATE=routable\n")
			}
			var wait string
			if tc.waitOnline != "" {
				body := `echo "$@" > "$0.args"`
				if tc.failWait {
					body += "\necho 'Timeout occurred while waiting for network connectivity.' >&2; exit 1"
				}
				wait = script(t, h.agent.Paths.Host(tc.waitOnline), body)
			}
			// ip-detect records whether the wait came first.
			ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), `test -e "`+wait+`.args" && echo waited > "$0.order"; echo 10.0.2.15`)
			h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect, "MASTER_LIST="+tc.masters)
			if err := h.agent.IPDetect(context.Background()); err != nil {
				t.Fatalf("IPDetect: %v", err)
			}
			args, err := os.ReadFile(wait + ".args")
			if tc.wantArgs == "" {
				if err == nil {
					t.Errorf("wait-online ran with %q, want it not to run", args)
				}
			} else {
				if strings.TrimSpace(string(args)) != tc.wantArgs {
					t.Errorf("wait-online ran with %q, %v; want %q", args, err, tc.wantArgs)
				}
				if order, _ := os.ReadFile(ipDetect + ".order"); string(order) != "waited\n" {
					t.Error("ip-detect ran before wait-online")
				}
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
