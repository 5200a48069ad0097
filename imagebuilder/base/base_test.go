package base

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/atomicfile"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "base.tar")
	must(t, os.WriteFile(tarPath, tarBytes(t, tarEntry{Name: "etc/x", Body: "x"}), 0o644))
	qcow := filepath.Join(dir, "disk.img")
	must(t, os.WriteFile(qcow, []byte("QFI\xfb\x00\x00\x00\x03"), 0o644))
	xz := filepath.Join(dir, "base.tar.xz")
	must(t, os.WriteFile(xz, []byte("\xfd7zXZ\x00\x00"), 0o644))
	junk := filepath.Join(dir, "junk")
	must(t, os.WriteFile(junk, []byte("hello"), 0o644))
	cases := []struct {
		ref    string
		kind   Kind
		target string
		err    string
	}{
		{tarPath, KindTar, tarPath, ""},
		{dir, KindDir, dir, ""},
		{qcow, KindQcow2, qcow, ""},
		{"oci:/x/layout:v1", KindOCILayout, "/x/layout:v1", ""},
		{"docker-archive:/x/a.tar", KindDockerArchive, "/x/a.tar", ""},
		{"docker://127.0.0.1:5000/base:1", KindRegistry, "127.0.0.1:5000/base:1", ""},
		{"registry://127.0.0.1:5000/base:1", KindRegistry, "127.0.0.1:5000/base:1", ""},
		{"raw:/x/d.raw", KindRaw, "/x/d.raw", ""},
		{"oci:", "", "", `nothing after "oci:"`},
		{junk, "", "", "not a directory, tar (plain, gzip, zstd), qcow2 or partitioned disk image"},
		{xz, "", "", "xz and bzip2 tarballs are not supported: recompress it with zstd or gzip"},
		{filepath.Join(dir, "missing"), "", "", "no such file"},
	}
	for _, c := range cases {
		k, target, err := Parse(c.ref)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.ref, err, c.err)
			}
			continue
		}
		if err != nil || k != c.kind || target != c.target {
			t.Errorf("%s: %s %s %v, want %s %s", c.ref, k, target, err, c.kind, c.target)
		}
	}
}

// TestTarKinds: plain, gzip and zstd tarballs give the same tree; the
// digest is the file's own SHA-256.
func TestTarKinds(t *testing.T) {
	dir := t.TempDir()
	data := tarBytes(t, tarEntry{Name: "etc/", Type: tar.TypeDir, Mode: 0o755}, tarEntry{Name: "etc/hostname", Body: "h\n"},
		tarEntry{Name: "etc/link", Type: tar.TypeSymlink, Link: "hostname"})
	plain := filepath.Join(dir, "b.tar")
	must(t, os.WriteFile(plain, data, 0o644))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	gzPath := filepath.Join(dir, "b.tar.gz")
	must(t, os.WriteFile(gzPath, gz.Bytes(), 0o644))
	zstPath := filepath.Join(dir, "b.tar.zst")
	run(t, "zstd", "-q", "-f", plain, "-o", zstPath)
	var want []string
	for _, p := range []string{plain, gzPath, zstPath} {
		b, err := Open(context.Background(), p, nil)
		must(t, err)
		if b.Kind != KindTar {
			t.Errorf("%s: kind %s", p, b.Kind)
		}
		sum, _ := atomicfile.SHA256(p)
		if b.Digest != "sha256:"+sum {
			t.Errorf("%s: digest %s, want the file's sha256 %s", p, b.Digest, sum)
		}
		m := manifestOf(t, b)
		if want == nil {
			want = m
			if len(m) != 3 {
				t.Fatalf("manifest %v", m)
			}
		}
		sameManifest(t, p, m, want)
	}
}

// TestHostileTarBase: a base tarball with an escaping path or link is
// refused by overlay.Apply naming the entry, and nothing lands outside.
func TestHostileTarBase(t *testing.T) {
	cases := []struct {
		name  string
		entry tarEntry
		want  string
	}{
		{"dotdot path", tarEntry{Name: "etc/../../evil", Body: "x"}, `tar entry "etc/../../evil": ".." component refused`},
		{"absolute path", tarEntry{Name: "/etc/evil", Body: "x"}, `tar entry "/etc/evil": absolute path refused`},
		{"escaping symlink", tarEntry{Name: "etc/out", Type: tar.TypeSymlink, Link: "../../../../tmp"}, `tar entry "etc/out": symlink target "../../../../tmp" points outside the root`},
		{"escaping hardlink", tarEntry{Name: "etc/hl", Type: tar.TypeLink, Link: "../outside"}, `tar entry "etc/hl": hardlink target "../outside" refused`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "hostile.tar")
			must(t, os.WriteFile(p, tarBytes(t, tarEntry{Name: "etc/", Type: tar.TypeDir, Mode: 0o755}, c.entry), 0o644))
			b, err := Open(context.Background(), p, nil)
			must(t, err)
			stage := filepath.Join(dir, "stage", "root")
			must(t, os.MkdirAll(stage, 0o755))
			err = b.Apply(context.Background(), overlay.NewTree(stage))
			var ee *overlay.EntryError
			if err == nil || !errors.As(err, &ee) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			for _, outside := range []string{"evil", "stage/evil", "outside"} {
				if _, err := os.Lstat(filepath.Join(dir, outside)); err == nil {
					t.Errorf("%s written outside the root", outside)
				}
			}
		})
	}
}

// TestDirBase: a directory's stream carries owners, modes, xattrs, links,
// devices; its digest ignores mtimes and follows content.
func TestDirBase(t *testing.T) {
	root := fixtureRoot(t)
	ctx := context.Background()
	b, err := Open(ctx, root, nil)
	must(t, err)
	if b.Kind != KindDir {
		t.Fatalf("kind %s", b.Kind)
	}
	m := manifestOf(t, b)
	text := strings.Join(m, "\n")
	for _, want := range []string{
		"/etc/shadow file 0640 0:42 size=15",
		"/usr/bin/prog file 4755 0:0 xattrs=security.capability=01000002002",
		"/etc/passwd file 0644 0:0 xattrs=user.test=68656c6c6f size=",
		"/etc/os-release symlink 0777 0:0 -> ../usr/lib/os-release",
		"/etc/long-link symlink 0777 0:0 -> /usr/lib/a-rather-long",
		"/dev/null dev3 0666 0:0 1,3",
		"/run/initctl fifo 0600 0:0",
		"/home/user/notes file 0600 1000:1000",
		"/var/lib/sparse file 0644 0:0 size=3145731",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("manifest lacks %q:\n%s", want, text)
		}
	}
	// The hardlink reads as the same file.
	var prog, again string
	for _, l := range m {
		if rest, ok := strings.CutPrefix(l, "/usr/bin/prog "); ok {
			prog = rest
		}
		if rest, ok := strings.CutPrefix(l, "/usr/bin/prog-again "); ok {
			again = rest
		}
	}
	if prog == "" || prog != again {
		t.Errorf("hardlink: %q vs %q", prog, again)
	}
	// Applied into a tree, the hardlink is a hardlink.
	stage := filepath.Join(t.TempDir(), "root")
	must(t, os.Mkdir(stage, 0o755))
	tree := overlay.NewTree(stage)
	must(t, b.Apply(ctx, tree))
	if e, ok := tree.Lookup("usr/bin/prog-again"); !ok || e.Kind != overlay.KindHardlink {
		t.Errorf("prog-again: %+v", e)
	}
	// Digest: stable, blind to mtimes, sensitive to content and modes.
	again2, err := Open(ctx, "dir:"+root, nil)
	must(t, err)
	must(t, os.Chtimes(filepath.Join(root, "etc/passwd"), time0, time0))
	touched, err := Open(ctx, root, nil)
	must(t, err)
	if again2.Digest != b.Digest || touched.Digest != b.Digest {
		t.Errorf("digest not stable: %s %s %s", b.Digest, again2.Digest, touched.Digest)
	}
	must(t, os.Chmod(filepath.Join(root, "etc/passwd"), 0o600))
	changed, err := Open(ctx, root, nil)
	must(t, err)
	if changed.Digest == b.Digest {
		t.Errorf("digest blind to a mode change")
	}
}
