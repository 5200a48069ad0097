package distros

import (
	"strings"
	"testing"

	"imagebuilder/overlay"
)

func treeWith(t *testing.T, osRelease string) *overlay.Tree {
	t.Helper()
	tr := overlay.NewTree(t.TempDir())
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.WriteFile("usr/lib/os-release", []byte(osRelease), 0o644, 0, 0))
	must(tr.Symlink("../usr/lib/os-release", "etc/os-release"))
	must(tr.Symlink("usr/lib", "lib"))
	for _, u := range []string{"systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service"} {
		must(tr.WriteFile("usr/lib/systemd/system/"+u, []byte("[Unit]\n"), 0o644, 0, 0))
	}
	must(tr.WriteFile("etc/ssh/ssh_host_ed25519_key", []byte("k"), 0o600, 0, 0))
	must(tr.WriteFile("etc/machine-id", []byte("0123\n"), 0o444, 0, 0))
	return tr
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name, osr, want, err string
	}{
		{"debian 12", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n", "debian", ""},
		{"debian 11", "ID=debian\nVERSION_ID=\"11\"\n", "", `version "11" is not supported`},
		{"alpine", "PRETTY_NAME=\"Alpine Linux v3.19\"\nID=alpine\nVERSION_ID=3.19.0\n", "", `unsupported base distribution "Alpine Linux v3.19"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _, err := Detect(treeWith(t, c.osr))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || p.Name() != c.want {
				t.Fatalf("got %v %v", p, err)
			}
		})
	}
	if _, _, err := Detect(overlay.NewTree(t.TempDir())); err == nil || !strings.Contains(err.Error(), "no /etc/os-release") {
		t.Errorf("empty tree: %v", err)
	}
}

func TestDebianFixup(t *testing.T) {
	tr := treeWith(t, "ID=debian\nVERSION_ID=12\n")
	p, o, err := Detect(tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Fixup(tr, o); err != nil {
		t.Fatal(err)
	}
	e, ok := tr.Lookup("etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
	if !ok || e.Link != "/lib/systemd/system/systemd-networkd.service" {
		t.Errorf("networkd not enabled: %+v", e)
	}
	if _, ok := tr.Lookup("etc/systemd/network/80-imagebuilder-dhcp.network"); !ok {
		t.Errorf("no DHCP network file")
	}
	if _, ok := tr.Lookup("etc/ssh/ssh_host_ed25519_key"); ok {
		t.Errorf("ssh host key kept")
	}
	if id, _ := tr.ReadFile("etc/machine-id"); len(id) != 0 {
		t.Errorf("machine-id = %q", id)
	}
}
