package base

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tarEntry is one entry of a synthetic tar stream; a Body makes a file.
type tarEntry struct {
	Name, Body, Link string
	Type             byte
	Mode             int64
}

func tarBytes(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: e.Mode}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is needed by this test: apt-get install %s", name, map[string]string{
			"mkfs.ext4": "e2fsprogs", "sgdisk": "gdisk", "qemu-img": "qemu-utils", "zstd": "zstd"}[name])
	}
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fixtureRoot makes a small root with every kind of entry the readers must
// carry: owners, setuid, xattrs, short and long symlinks, a hardlink, a
// sparse file, a device node and a fifo (those two need root).
func fixtureRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test makes device nodes and files of other owners: run it as root (make test does)")
	}
	root := filepath.Join(t.TempDir(), "root")
	w := func(p, body string, mode os.FileMode) {
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(body), mode))
		must(t, os.Chmod(full, mode))
	}
	w("usr/lib/os-release", "ID=debian\nVERSION_ID=12\n", 0o644)
	w("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	w("etc/shadow", "root:*:1::::::\n", 0o640)
	must(t, os.Chown(filepath.Join(root, "etc/shadow"), 0, 42))
	w("usr/bin/prog", "#!/bin/sh\necho hi\n", 0o755)
	must(t, os.Chmod(filepath.Join(root, "usr/bin/prog"), 0o4755|os.ModeSetuid))
	must(t, os.Link(filepath.Join(root, "usr/bin/prog"), filepath.Join(root, "usr/bin/prog-again")))
	w("home/user/notes", "mine\n", 0o600)
	must(t, os.Chown(filepath.Join(root, "home/user/notes"), 1000, 1000))
	must(t, os.Chown(filepath.Join(root, "home/user"), 1000, 1000))
	must(t, os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")))
	long := "/usr/lib/" + strings.Repeat("a-rather-long-directory-name/", 4) + "target"
	must(t, os.Symlink(long, filepath.Join(root, "etc/long-link")))
	must(t, unix.Setxattr(filepath.Join(root, "etc/passwd"), "user.test", []byte("hello"), 0))
	must(t, unix.Setxattr(filepath.Join(root, "usr/bin/prog"), "security.capability",
		[]byte{1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0))
	sparse := filepath.Join(root, "var/lib/sparse")
	must(t, os.MkdirAll(filepath.Dir(sparse), 0o755))
	f, err := os.Create(sparse)
	must(t, err)
	_, err = f.WriteAt([]byte("end"), 3<<20)
	must(t, err)
	must(t, f.Close())
	must(t, os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(t, unix.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Chmod(filepath.Join(root, "dev/null"), 0o666))
	must(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	must(t, unix.Mkfifo(filepath.Join(root, "run/initctl"), 0o600))
	// A directory big enough to span several blocks.
	for i := 0; i < 300; i++ {
		w(filepath.Join("usr/share/many", strings.Repeat("x", 20)+string(rune('a'+i%26))+string(rune('a'+i/26))), "x", 0o644)
	}
	return root
}

// rawDisk puts an ext4 file system made from dir with mkfs.ext4 -d into a
// GPT disk image (1 MiB offset, "Linux root (x86-64)" partition).
func rawDisk(t *testing.T, dir string, mib int) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(img)
	must(t, err)
	must(t, f.Truncate(int64(mib+2)<<20))
	must(t, f.Close())
	run(t, "sgdisk", "-n", "1:2048:+"+strconv.Itoa(mib)+"M", "-t", "1:8304", img)
	run(t, "mkfs.ext4", "-F", "-q", "-E", "offset=1048576", "-d", dir, img, strconv.Itoa(mib)+"M")
	return img
}

func manifestOf(t *testing.T, b *Base) []string {
	t.Helper()
	r, err := b.Tar(context.Background())
	must(t, err)
	defer r.Close()
	m, err := Manifest(r)
	must(t, err)
	return m
}

func sameManifest(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	for _, l := range want {
		w[l] = true
	}
	var diff []string
	for _, l := range want {
		if !g[l] {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range got {
		if !w[l] {
			diff = append(diff, "+ "+l)
		}
	}
	if len(diff) > 0 {
		if len(diff) > 40 {
			diff = append(diff[:40], "...")
		}
		t.Errorf("%s: manifest differs (-want +got):\n%s", what, strings.Join(diff, "\n"))
	}
}

var time0 = time.Unix(12345, 0)
