package inplace

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"imagebuilder/overlay"
)

// skeletonTar is what the appliance writes for a small root: /etc files
// with contents, a binary without (omitted), logs, a symlink.
func skeletonTar(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	add := func(h *tar.Header, data string) {
		h.Format, h.Size = tar.FormatPAX, int64(len(data))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	dir := func(n string) { add(&tar.Header{Name: n + "/", Typeflag: tar.TypeDir, Mode: 0o755}, "") }
	for _, d := range []string{"etc", "etc/ssh", "usr", "usr/bin", "var", "var/log", "var/log/apt"} {
		dir(d)
	}
	add(&tar.Header{Name: "etc/hostname", Typeflag: tar.TypeReg}, "vendor\n")
	add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg}, "root:x:0:0::/root:/bin/sh\n")
	add(&tar.Header{Name: "etc/ssh/ssh_host_rsa_key", Typeflag: tar.TypeReg, Mode: 0o600}, "key")
	add(&tar.Header{Name: "usr/bin/tar", Typeflag: tar.TypeReg, Mode: 0o755, PAXRecords: map[string]string{omittedKey: "400000"}}, "")
	add(&tar.Header{Name: "var/log/apt/history.log", Typeflag: tar.TypeReg}, "x")
	add(&tar.Header{Name: "bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin"}, "")
	tw.Close()
	p := filepath.Join(t.TempDir(), "skeleton.tar")
	// The skeleton disk is a sparse file bigger than the tar.
	data := append(b.Bytes(), make([]byte, 1<<16)...)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type entry struct {
	name string
	typ  byte
	mode int64
	link string
	data string
}

func readTar(t *testing.T, data []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d, _ := io.ReadAll(tr)
		out = append(out, entry{h.Name, h.Typeflag, h.Mode, h.Linkname, string(d)})
	}
}

// TestWriteChanges: what a fixup adds, changes and removes becomes the
// overlay — whiteouts first (one per removed subtree), then the new and
// changed entries, hardlinks last — and the same changes give the same
// bytes.
func TestWriteChanges(t *testing.T) {
	build := func() []byte {
		s, err := ReadSkeleton(skeletonTar(t), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if !s.Omitted["usr/bin/tar"] || s.Omitted["etc/passwd"] {
			t.Fatalf("omitted: %v", s.Omitted)
		}
		tr := s.Tree
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(tr.Remove("etc/hostname"))
		must(tr.Remove("var/log/apt"))
		must(tr.Remove("etc/ssh/ssh_host_rsa_key"))
		must(tr.WriteFile("etc/passwd", []byte("root:x:0:0::/root:/bin/sh\nsvc:x:999:999::/:/usr/sbin/nologin\n"), 0o644, 0, 0))
		must(tr.MkdirAll("etc/systemd/system", 0o755, 0, 0))
		must(tr.Symlink("/dev/null", "etc/systemd/system/systemd-firstboot.service"))
		var hl bytes.Buffer
		tw := tar.NewWriter(&hl)
		tw.WriteHeader(&tar.Header{Name: "aa-tar", Typeflag: tar.TypeLink, Linkname: "usr/bin/tar"})
		tw.Close()
		must(tr.Apply(&hl, "", overlay.ApplyOptions{}))
		var out bytes.Buffer
		c, err := s.WriteChanges(&out, 42)
		must(err)
		if c != (Changes{Added: 4, Changed: 1, Removed: 4}) {
			t.Errorf("changes %+v", c)
		}
		return out.Bytes()
	}
	a := build()
	if b := build(); !bytes.Equal(a, b) {
		t.Error("two runs differ")
	}
	got := readTar(t, a)
	want := []entry{
		{"etc/.wh.hostname", tar.TypeReg, 0o600, "", ""},
		{"etc/ssh/.wh.ssh_host_rsa_key", tar.TypeReg, 0o600, "", ""},
		{"var/log/.wh.apt", tar.TypeReg, 0o600, "", ""},
		{"etc/passwd", tar.TypeReg, 0o644, "", "root:x:0:0::/root:/bin/sh\nsvc:x:999:999::/:/usr/sbin/nologin\n"},
		{"etc/systemd/", tar.TypeDir, 0o755, "", ""},
		{"etc/systemd/system/", tar.TypeDir, 0o755, "", ""},
		{"etc/systemd/system/systemd-firstboot.service", tar.TypeSymlink, 0o777, "/dev/null", ""},
		{"aa-tar", tar.TypeLink, 0o755, "usr/bin/tar", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("overlay\n got %+v\nwant %+v", got, want)
	}
}

// TestWriteChangesRefusesOmitted: a fixup that rewrites a file whose
// contents the skeleton does not carry is refused, naming it.
func TestWriteChangesRefusesOmitted(t *testing.T) {
	s, err := ReadSkeleton(skeletonTar(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tree.WriteFile("usr/bin/tar", []byte("patched"), 0o755, 0, 0); err != nil {
		t.Fatal(err)
	}
	_, err = s.WriteChanges(io.Discard, 0)
	if err == nil || !strings.Contains(err.Error(), "a fixup changes /usr/bin/tar, whose contents the appliance did not read") {
		t.Errorf("error: %v", err)
	}
}

// TestReadSkeletonHostile: a skeleton entry escaping the root is refused.
func TestReadSkeletonHostile(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	p := filepath.Join(t.TempDir(), "s.tar")
	os.WriteFile(p, b.Bytes(), 0o644)
	if _, err := ReadSkeleton(p, t.TempDir()); err == nil || !strings.Contains(err.Error(), "../evil") {
		t.Errorf("error: %v", err)
	}
}
