package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestTestCmdHelpAndBadInput(t *testing.T) {
	code, out, _ := run(t, "test", "--help")
	for _, w := range []string{"Examples:", "imagebuilder test", "--junit", "--nodes", "no failed systemd units", "join check (cluster side)"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("test --help (code %d) lacks %q", code, w)
		}
	}
	img := filepath.Join(t.TempDir(), "none.qcow2")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing image", []string{"test", img, "--accel", "tcg"}, "none.qcow2"},
		{"bad nodes", []string{"test", img, "--nodes", "master=x"}, `"master=x" is not ROLE=COUNT`},
		{"bad role in nodes", []string{"test", img, "--nodes", "boss=1"}, `role "boss"`},
		{"role and nodes", []string{"test", img, "--nodes", "master=1", "--role", "agent"}, "exclusive"},
		{"bad delay", []string{"test", img, "--nodes", "master=1,agent=1", "--delay", "master-9=1m"}, `no node "master-9"`},
		{"bad expect", []string{"test", img, "--expect", "("}, "expected console line"},
		{"bad role", []string{"test", img, "--role", "boss"}, `role "boss"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := run(t, c.args...)
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Errorf("code %d, stderr lacks %q:\n%s", code, c.want, stderr)
			}
		})
	}
}
