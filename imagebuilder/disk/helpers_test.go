package disk

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"imagebuilder/overlay"
)

// needTool returns the path of an external tool, failing the test with the
// package to install when it is missing.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := Tool{Name: name, Package: pkg}.Resolve()
	if err != nil {
		t.Fatalf("this test needs %s: apt-get install %s (%v)", name, pkg, err)
	}
	return p
}

// run runs a tool and returns its combined output, failing on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// smallTree builds a tree that exercises every kind of entry: setuid and
// setgid files, foreign owners, a sticky dir, symlinks, a hardlink, device
// nodes, a fifo, xattrs, awkward names, and a fake kernel and initrd.
func smallTree(t testing.TB, root string) *overlay.Tree {
	t.Helper()
	tree := overlay.NewTree(root)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct {
		p        string
		mode     uint32
		uid, gid int
	}{
		{"boot", 0o755, 0, 0}, {"etc", 0o755, 0, 0}, {"dev", 0o755, 0, 0},
		{"tmp", 0o1777, 0, 0}, {"var/mail", 0o2775, 0, 8}, {"home/user", 0o750, 1000, 1000},
		{"usr/bin", 0o755, 0, 0}, {"odd", 0o755, 0, 0},
	} {
		must(tree.MkdirAll(d.p, d.mode, d.uid, d.gid))
		// MkdirAll keeps existing dirs; set the leaf's metadata explicitly.
		e := tree.Entries[overlay.CleanRel(d.p)]
		e.Mode, e.UID, e.GID = d.mode, d.uid, d.gid
	}
	must(tree.WriteFile("boot/vmlinuz-6.1.0-9-amd64", []byte("old kernel"), 0o644, 0, 0))
	must(tree.WriteFile("boot/vmlinuz-6.1.0-13-amd64", []byte("new kernel"), 0o644, 0, 0))
	must(tree.WriteFile("boot/initrd.img-6.1.0-13-amd64", []byte("new initrd"), 0o644, 0, 0))
	must(tree.WriteFile("etc/os-release", []byte("PRETTY_NAME=\"Test Linux 1\"\n"), 0o644, 0, 0))
	must(tree.WriteFile("etc/shadow", []byte("root:*:1::::::\n"), 0o640, 0, 42))
	must(tree.WriteFile("usr/bin/su", []byte("#!/bin/sh\n"), 0o4755, 0, 0))
	must(tree.WriteFile("usr/bin/chage", []byte("#!/bin/sh\n"), 0o2755, 0, 42))
	must(tree.WriteFile("usr/bin/ping", []byte("#!/bin/sh\n"), 0o755, 0, 0))
	tree.Entries["usr/bin/ping"].Xattrs = map[string][]byte{
		"security.capability": {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"user.comment":        []byte("a \"quoted\" value"),
	}
	must(tree.WriteFile("home/user/.profile", []byte("# profile\n"), 0o644, 1000, 1000))
	must(tree.WriteFile("odd/with space", []byte("x"), 0o600, 7, 7))
	must(tree.WriteFile(`odd/with"quote`, []byte("y"), 0o600, 100000, 100000))
	must(tree.Symlink("usr/bin", "bin"))
	tree.Entries["bin"].UID = 0
	must(tree.Symlink("su", "usr/bin/su-link"))
	tree.Entries["usr/bin/su-link"].UID, tree.Entries["usr/bin/su-link"].GID = 5, 6
	// A hardlink, as Apply records one.
	must(os.Link(filepath.Join(root, "usr/bin/su"), filepath.Join(root, "usr/bin/su-hard")))
	hl := *tree.Entries["usr/bin/su"]
	hl.Path, hl.Kind, hl.Link = "usr/bin/su-hard", overlay.KindHardlink, "usr/bin/su"
	tree.Entries[hl.Path] = &hl
	for _, d := range []*overlay.Entry{
		{Path: "dev/null", Kind: overlay.KindCharDev, Mode: 0o666, DevMajor: 1, DevMinor: 3},
		{Path: "dev/tty", Kind: overlay.KindCharDev, Mode: 0o666, GID: 5, DevMajor: 5, DevMinor: 0},
		{Path: "dev/sda", Kind: overlay.KindBlockDev, Mode: 0o660, GID: 6, DevMajor: 8, DevMinor: 0},
		{Path: "dev/big", Kind: overlay.KindCharDev, Mode: 0o600, DevMajor: 260, DevMinor: 300000},
		{Path: "odd/fi fo", Kind: overlay.KindFifo, Mode: 0o620, UID: 3, GID: 4,
			Xattrs: map[string][]byte{"user.x": []byte("1")}},
	} {
		tree.Entries[d.Path] = d
	}
	return tree
}
