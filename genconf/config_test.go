package genconf

import (
	"errors"
	"strings"
	"testing"
)

func TestParseReportsEveryProblem(t *testing.T) {
	script := map[string]string{"/c/ip-detect": "#!/bin/sh\necho 10.0.0.1\n", "/c/noshebang": "echo 1\n"}
	cases := []struct {
		name string
		yaml string
		want []string // "field: fragment"
	}{
		{"empty", "", []string{"(file): is empty"}},
		{"missing required", "prefix: /opt/x\n", []string{"cluster_name: required", "master_list: required"}},
		{"unknown key", "cluster_name: a\nmaster_list: [10.0.0.1]\nmaster_lst: []\n", []string{"master_lst: line 3: unknown key"}},
		{"bad ip and even count", "cluster_name: a\nmaster_list: [10.0.0.1, 10.0.0.2, nope, 10.0.0.1]\n",
			[]string{`master_list[2]: "nope" is not an IP`, "master_list[3]: 10.0.0.1 repeats master_list[0]", "master_list: 4 masters"}},
		{"bad name and prefix", "cluster_name: Bad_Name\nprefix: opt/x\nmaster_list: [10.0.0.1]\n",
			[]string{"cluster_name: \"Bad_Name\" is not a DNS label", "prefix: \"opt/x\" must be"}},
		{"missing ip-detect", "cluster_name: a\nmaster_list: [10.0.0.1]\nip_detect_path: gone\n", []string{"ip_detect_path: cannot read the ip-detect script /c/gone"}},
		{"no shebang", "cluster_name: a\nmaster_list: [10.0.0.1]\nip_detect_path: noshebang\n", []string{"ip_detect_path: /c/noshebang has no shebang"}},
		{"bad durations", "cluster_name: a\nmaster_list: [10.0.0.1]\njoin_timeout: soon\nip_detect_timeout: -1s\n",
			[]string{"join_timeout: \"soon\"", "ip_detect_timeout: \"-1s\""}},
		{"discovery", "cluster_name: a\nmaster_list: [10.0.0.1]\nmaster_discovery: dns\n", []string{"master_discovery: \"dns\" is not supported"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("/c/config.yaml", []byte(c.yaml), memSources(script, nil))
			var rep *Report
			if !errors.As(err, &rep) {
				t.Fatalf("want a Report, got %v", err)
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("report lacks %q:\n%s", w, msg)
				}
			}
			if len(rep.Problems) != len(c.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(rep.Problems), len(c.want), msg)
			}
		})
	}
}

func TestFilesDeterministicAndHashed(t *testing.T) {
	read := memSources(map[string]string{"/c/ip-detect": "#!/bin/sh\necho 10.0.0.1\n"}, nil)
	cfg := "cluster_name: demo\nmaster_list: [10.0.0.1]\njoin_timeout: 2m\n"
	r1, err := Parse("/c/config.yaml", []byte(cfg), read)
	if err != nil {
		t.Fatal(err)
	}
	f1, h1 := r1.Files()
	r2, _ := Parse("/c/config.yaml", []byte(cfg), read)
	f2, h2 := r2.Files()
	if h1 != h2 || len(f1) != len(f2) {
		t.Fatalf("not deterministic")
	}
	env := string(f1[0].Data)
	for _, want := range []string{"CLUSTER_NAME=demo\n", "CLUSTER_PREFIX=/opt/cluster\n", "MASTER_LIST=10.0.0.1\n",
		"JOIN_TIMEOUT=120\n", "IP_DETECT=/opt/cluster/etc/ip-detect\n", "CONFIG_HASH=" + h1 + "\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("cluster.env lacks %q:\n%s", want, env)
		}
	}
	if f1[0].Path != "etc/cluster.env" || f1[1].Path != "etc/ip-detect" || f1[1].Mode != 0o755 {
		t.Errorf("files = %v %v", f1[0].Path, f1[1])
	}
	r3, _ := Parse("/c/config.yaml", []byte(strings.Replace(cfg, "2m", "3m", 1)), read)
	if _, h3 := r3.Files(); h3 == h1 {
		t.Errorf("config change did not change the hash")
	}
}
