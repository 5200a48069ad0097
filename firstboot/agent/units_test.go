package agent

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unitFile) get(section, key string) []string { return u[section][key] }

func TestUnits(t *testing.T) {
	dir := filepath.Join("..", "units")
	tests := []struct {
		file string
		want map[string][]string // "Section.Key" -> values that must all be present
	}{
		{file: "cluster.target", want: map[string][]string{
			"Unit.Wants":       {"cluster-ipdetect.service cluster-firstboot.service cluster-testd.path"},
			"Install.WantedBy": {"multi-user.target"},
		}},
		{file: "cluster-ipdetect.service", want: map[string][]string{
			"Unit.After":              {"systemd-networkd.service NetworkManager.service"},
			"Service.Type":            {"oneshot"},
			"Service.RemainAfterExit": {"yes"},
			"Service.ExecStart":       {"@PREFIX@/bin/cluster-firstboot ipdetect"},
			"Service.StandardOutput":  {"journal+console"},
		}},
		{file: "cluster-firstboot.service", want: map[string][]string{
			"Unit.Requires":           {"cluster-ipdetect.service"},
			"Unit.After":              {"cluster-ipdetect.service"},
			"Service.Type":            {"oneshot"},
			"Service.ExecStart":       {"@PREFIX@/bin/cluster-firstboot join"},
			"Service.StandardOutput":  {"journal+console"},
			"Service.TimeoutStartSec": {"6h"},
		}},
		{file: "cluster-testd.path", want: map[string][]string{
			"Path.PathExists": {"/dev/virtio-ports/org.imagebuilder.test"},
			"Path.Unit":       {"cluster-testd.service"},
		}},
		{file: "cluster-testd.service", want: map[string][]string{
			"Unit.ConditionPathExists": {"/dev/virtio-ports/org.imagebuilder.test"},
			"Service.ExecStart":        {"@PREFIX@/bin/cluster-firstboot testd"},
		}},
	}
	// Nothing of firstboot waits for network-online.target: ip-detect
	// retries on network changes instead, so the join starts as soon as
	// the address exists (issue 8's boot time).
	for _, f := range []string{"cluster-ipdetect.service", "cluster-firstboot.service"} {
		for _, a := range parseUnit(t, filepath.Join(dir, f)).get("Unit", "After") {
			if strings.Contains(a, "network-online.target") {
				t.Errorf("%s: After=%s waits for network-online.target", f, a)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(tests) {
		t.Errorf("units/ holds %d files, the test knows %d", len(entries), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			u := parseUnit(t, filepath.Join(dir, tc.file))
			for sk, want := range tc.want {
				section, key, _ := strings.Cut(sk, ".")
				got := u.get(section, key)
				for _, w := range want {
					if !slices.Contains(got, w) {
						t.Errorf("[%s] %s = %q, want %q among them", section, key, got, w)
					}
				}
			}
		})
	}
}

// TestUnitsVerify runs systemd's own checker on the units, with @PREFIX@
// pointing at a directory that holds a stand-in agent binary.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found: apt-get install systemd")
	}
	prefix := t.TempDir()
	script(t, filepath.Join(prefix, "bin", "cluster-firstboot"), "exit 0")
	out := t.TempDir()
	entries, err := os.ReadDir(filepath.Join("..", "units"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("..", "units", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(out, e.Name())
		writeFile(t, p, strings.ReplaceAll(string(b), "@PREFIX@", prefix), 0o644)
		files = append(files, p)
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, files...)...)
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(b))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, b)
	}
}
