package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnits(t *testing.T) {
	tests := []struct {
		file  string
		lines []string
	}{
		{file: "clusterd-master.service", lines: []string{
			"ExecStart=@PREFIX@/bin/clusterd serve --role master",
			"Wants=cluster-etcd.service",
		}},
		{file: "cluster-etcd.service", lines: []string{
			"ExecStart=@PREFIX@/bin/clusterd etcd --etcd-bin @PREFIX@/bin/etcd",
			"Type=simple",
		}},
		{file: "clusterd-agent.service", lines: []string{
			"ExecStart=@PREFIX@/bin/clusterd serve --role agent",
		}},
	}
	common := []string{
		"EnvironmentFile=@PREFIX@/etc/cluster.env",
		"EnvironmentFile=/run/cluster/ip.env",
		"Restart=on-failure",
		"StateDirectory=clusterd",
		"Requires=cluster-ipdetect.service",
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "units", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, l := range strings.Split(string(b), "\n") {
				have[strings.TrimSpace(l)] = true
			}
			for _, want := range append(tc.lines, common...) {
				if !have[want] {
					t.Errorf("%s lacks the line %q", tc.file, want)
				}
			}
		})
	}
}

// TestUnitsVerify runs systemd's checker on the units with @PREFIX@ set to a
// directory holding a stand-in clusterd and an empty cluster.env.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found: apt-get install systemd")
	}
	prefix := t.TempDir()
	for path, content := range map[string]string{"bin/clusterd": "#!/bin/sh\n", "etc/cluster.env": ""} {
		p := filepath.Join(prefix, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	var files []string
	for _, name := range []string{"clusterd-master.service", "clusterd-agent.service", "cluster-etcd.service"} {
		b, err := os.ReadFile(filepath.Join("..", "units", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(out, name)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "@PREFIX@", prefix)), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	// The units require firstboot's cluster-ipdetect.service; a stand-in on
	// the unit search path satisfies the dependency.
	stub := "[Service]\nType=oneshot\nExecStart=" + filepath.Join(prefix, "bin", "clusterd") + "\n"
	if err := os.WriteFile(filepath.Join(out, "cluster-ipdetect.service"), []byte(stub), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, files...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+out+":")
	if b, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, b)
	}
}
