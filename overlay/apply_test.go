package overlay

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarOf builds a tar stream from headers; regular files get body "x".
func tarOf(t *testing.T, hdrs ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "x:" + h.Name
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if body != "" {
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func dir(n string) *tar.Header { return &tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755} }
func file(n string, mode int64) *tar.Header {
	return &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: mode}
}
func sym(n, target string) *tar.Header {
	return &tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
}
func hard(n, target string) *tar.Header {
	return &tar.Header{Name: n, Typeflag: tar.TypeLink, Linkname: target}
}

func TestApplyRefusesEscapes(t *testing.T) {
	cases := []struct {
		name    string
		at      string
		confine bool
		hdrs    []*tar.Header
		entry   string
	}{
		{"dotdot", "", false, []*tar.Header{file("../evil", 0o644)}, "../evil"},
		{"inner dotdot", "", false, []*tar.Header{file("a/../../evil", 0o644)}, "a/../../evil"},
		{"absolute", "", false, []*tar.Header{file("/etc/passwd", 0o644)}, "/etc/passwd"},
		{"symlink above root", "", false, []*tar.Header{sym("a", "../../etc")}, "a"},
		{"file through symlink", "", false, []*tar.Header{sym("etc", "/tmp"), file("etc/x", 0o644)}, "etc/x"},
		{"bundle symlink leaves prefix", "opt/cluster", true, []*tar.Header{sym("bin/x", "../../../etc/shadow")}, "bin/x"},
		{"bundle absolute symlink outside prefix", "opt/cluster", true, []*tar.Header{sym("x", "/etc/shadow")}, "x"},
		{"hardlink outside prefix", "opt/cluster", true, []*tar.Header{hard("x", "../../etc/shadow")}, "x"},
		{"hardlink to missing", "", false, []*tar.Header{hard("x", "nothere")}, "x"},
		{"replace apply dir", "opt", false, []*tar.Header{file(".", 0o644)}, "."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			outside := filepath.Join(t.TempDir(), "outside")
			tr := NewTree(root)
			tr.WriteFile("etc/shadow", []byte("secret"), 0o640, 0, 42)
			err := tr.Apply(tarOf(t, c.hdrs...), c.at, ApplyOptions{Confine: c.confine})
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("want EntryError, got %v", err)
			}
			if ee.Entry != c.entry {
				t.Errorf("error names %q, want %q (%v)", ee.Entry, c.entry, err)
			}
			if _, err := os.Stat(outside); err == nil {
				t.Errorf("something was written outside")
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(root), "evil")); err == nil {
				t.Errorf("file escaped the root")
			}
		})
	}
}

func TestApplyRecordsMetadataAndLayers(t *testing.T) {
	root := t.TempDir()
	tr := NewTree(root)
	shadow := file("./etc/shadow", 0o640)
	shadow.Gid = 42
	suid := file("./usr/bin/su", 0o4755)
	dev := &tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}
	cap := file("./usr/bin/ping", 0o755)
	cap.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01\x00"}
	base := tarOf(t, dir("./"), dir("./etc/"), shadow, dir("./usr/"), dir("./usr/bin/"), suid, cap,
		hard("./usr/bin/su2", "./usr/bin/su"), sym("./bin", "usr/bin"), dir("./dev/"), dev)
	if err := tr.Apply(base, "", ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	e, _ := tr.Lookup("/etc/shadow")
	if e.Mode != 0o640 || e.GID != 42 || e.Kind != KindFile {
		t.Errorf("shadow entry = %+v", e)
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/shadow")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("staged shadow should be 0644 for the builder, got %v %v", fi.Mode(), err)
	}
	if e, _ := tr.Lookup("usr/bin/su"); e.Mode != 0o4755 {
		t.Errorf("setuid lost: %o", e.Mode)
	}
	if e, _ := tr.Lookup("usr/bin/su2"); e.Kind != KindHardlink || e.Link != "usr/bin/su" {
		t.Errorf("hardlink entry = %+v", e)
	}
	if e, _ := tr.Lookup("dev/null"); e.Kind != KindCharDev || e.DevMajor != 1 || e.DevMinor != 3 {
		t.Errorf("device entry = %+v", e)
	}
	if _, err := os.Lstat(filepath.Join(root, "dev/null")); !os.IsNotExist(err) {
		t.Errorf("device node must not be staged on disk: %v", err)
	}
	if e, _ := tr.Lookup("usr/bin/ping"); string(e.Xattrs["security.capability"]) != "\x01\x00" {
		t.Errorf("xattr lost: %+v", e.Xattrs)
	}
	// A later layer replaces a file by a directory and a directory by a file.
	layer := tarOf(t, dir("etc/shadow"), file("etc/shadow/inner", 0o600), file("usr", 0o644))
	if err := tr.Apply(layer, "", ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if e, _ := tr.Lookup("etc/shadow"); e.Kind != KindDir {
		t.Errorf("etc/shadow not replaced by dir: %+v", e)
	}
	if _, ok := tr.Lookup("usr/bin/su"); ok {
		t.Errorf("children of replaced dir still in tree")
	}
	got, err := tr.ReadFile("usr")
	if err != nil || string(got) != "x:usr" {
		t.Errorf("usr = %q %v", got, err)
	}
}

func TestInstallBundleLinksUnits(t *testing.T) {
	tr := NewTree(t.TempDir())
	bundle := tarOf(t, dir("systemd/"), file("systemd/cluster.target", 0o644),
		file("systemd/cluster-firstboot.service", 0o644), dir("packages/"), dir("packages/a--1/"),
		file("packages/a--1/tool", 0o755), dir("bin/"), sym("bin/tool", "../packages/a--1/tool"),
		dir("packages/a--1/sysusers.d/"), file("packages/a--1/sysusers.d/a.conf", 0o644),
		dir("sysusers.d/"), sym("sysusers.d/a.conf", "../packages/a--1/sysusers.d/a.conf"),
		dir("tmpfiles.d/"), file("tmpfiles.d/a.conf", 0o644), file("tmpfiles.d/README", 0o644))
	err := tr.InstallBundle(bundle, HostLayout{Prefix: "/opt/cluster", Role: "master"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"etc/systemd/system/cluster.target":                         "/opt/cluster/systemd/cluster.target",
		"etc/systemd/system/cluster-firstboot.service":              "/opt/cluster/systemd/cluster-firstboot.service",
		"etc/systemd/system/multi-user.target.wants/cluster.target": "/etc/systemd/system/cluster.target",
		"etc/sysusers.d/a.conf":                                     "/opt/cluster/sysusers.d/a.conf",
		"etc/tmpfiles.d/a.conf":                                     "/opt/cluster/tmpfiles.d/a.conf",
	}
	if _, ok := tr.Lookup("etc/tmpfiles.d/README"); ok {
		t.Error("etc/tmpfiles.d/README linked: only *.conf files are configuration")
	}
	for p, target := range want {
		e, ok := tr.Lookup(p)
		if !ok || e.Kind != KindSymlink || e.Link != target {
			t.Errorf("%s = %+v, want symlink to %s", p, e, target)
		}
	}
	role, err := tr.ReadFile("etc/cluster/role")
	if err != nil || strings.TrimSpace(string(role)) != "master" {
		t.Errorf("role = %q %v", role, err)
	}
	if err := tr.InstallBundle(tarOf(t, file("x", 0o644)), HostLayout{Prefix: "/opt/cluster"}); err == nil {
		t.Errorf("second bundle onto a populated prefix should fail")
	}
	if err := NewTree(t.TempDir()).InstallBundle(tarOf(t, dir("systemd/")), HostLayout{Prefix: "/opt/cluster"}); err == nil || !strings.Contains(err.Error(), "cluster.target") {
		t.Errorf("bundle without cluster.target: %v", err)
	}
	if err := NewTree(t.TempDir()).InstallBundle(bundle, HostLayout{Prefix: "/opt/cluster", Role: "boss"}); err == nil {
		t.Errorf("bad role accepted")
	}
}

func FuzzApply(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "a/b"})
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		os.Mkdir(root, 0o755)
		tr := NewTree(root)
		_ = tr.Apply(bytes.NewReader(data), "opt/p", ApplyOptions{Confine: true})
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 {
			t.Fatalf("something was written beside the root: %v", ents)
		}
	})
}
