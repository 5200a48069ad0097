package inplace

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needXFS(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mkfs.xfs", "xfs_db", "xfs_repair"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install xfsprogs", tool)
		}
	}
}

func xfsTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	xfsTool(t, "cp", "--sparse=always", from, to)
}

// TestNormalizeXFS: two copies of a file system whose /a inode got
// different generations and timestamps (as two appliance runs give)
// become byte-identical after NormalizeXFS and FormatXFSLog, pass
// xfs_repair -n (no LSN ahead of the log), and /a carries the epoch; the
// untouched /b/c keeps the vendor's inode.
func TestNormalizeXFS(t *testing.T) {
	needXFS(t)
	dir := t.TempDir()
	for p, data := range map[string]string{"t/a": "a\n", "t/b/c": "c\n"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644)
	}
	proto := "/dev/null\n0 0\nd--755 0 0\na ---644 0 0 " + dir + "/t/a\nb d--755 0 0\nc ---644 0 0 " + dir + "/t/b/c\n$\n$\n"
	os.WriteFile(filepath.Join(dir, "proto"), []byte(proto), 0o644)
	vendor := filepath.Join(dir, "vendor.xfs")
	os.WriteFile(vendor, nil, 0o644)
	os.Truncate(vendor, 300<<20)
	xfsTool(t, "mkfs.xfs", "-q", "-f", "-p", filepath.Join(dir, "proto"), vendor)
	const epoch = 1700000000
	var outs []string
	for i, edits := range [][]string{
		{"write core.gen 12345", "write core.ctime.sec 1000", "write core.mtime.nsec 5"},
		{"write core.gen 999", "write core.atime.nsec 77"},
	} {
		out := filepath.Join(dir, "out"+string(rune('1'+i))+".xfs")
		copyFile(t, vendor, out)
		args := []string{"-x", "-c", "path /a"}
		for _, e := range edits {
			args = append(args, "-c", e)
		}
		xfsTool(t, "xfs_db", append(args, out)...)
		f, err := os.OpenFile(out, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := os.Open(vendor)
		n, err := NormalizeXFS(f, v, epoch)
		f.Close()
		v.Close()
		if err != nil || n != 1 {
			t.Fatalf("NormalizeXFS: %d inodes, %v", n, err)
		}
		if err := FormatXFSLog(context.Background(), out); err != nil {
			t.Fatal(err)
		}
		// mkfs.xfs leaves cycle 1; the log is rewritten three above.
		if f, _ := os.Open(out); f != nil {
			c, err := logCycle(f)
			f.Close()
			if err != nil || c != 4 {
				t.Errorf("log cycle after formatting: %d, %v", c, err)
			}
		}
		if rep := xfsTool(t, "xfs_repair", "-n", out); strings.Contains(rep, "ahead of log") || strings.Contains(rep, "would") {
			t.Errorf("xfs_repair -n:\n%s", rep)
		}
		outs = append(outs, out)
	}
	a, _ := os.ReadFile(outs[0])
	b, _ := os.ReadFile(outs[1])
	if !bytes.Equal(a, b) {
		t.Error("the two normalized copies differ")
	}
	got := xfsTool(t, "xfs_db", "-r", "-c", "path /a", "-c", "print core.ctime.sec core.mtime.nsec core.gen", outs[0])
	if !strings.Contains(got, "core.ctime.sec = Tue Nov 14 22:13:20 2023") || !strings.Contains(got, "core.mtime.nsec = 0") || strings.Contains(got, "core.gen = 12345") {
		t.Errorf("/a after normalizing:\n%s", got)
	}
	c1 := xfsTool(t, "xfs_db", "-r", "-c", "path /b/c", "-c", "print core", outs[0])
	c0 := xfsTool(t, "xfs_db", "-r", "-c", "path /b/c", "-c", "print core", vendor)
	if c1 != c0 {
		t.Errorf("/b/c changed:\n%s\nwas:\n%s", c1, c0)
	}
}

// TestRangesFile: a file system split over ranges of a disk reads and
// writes as one space, across range boundaries.
func TestRangesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	disk := bytes.Repeat([]byte{'.'}, 64)
	os.WriteFile(p, disk, 0o644)
	f, _ := os.OpenFile(p, os.O_RDWR, 0)
	defer f.Close()
	m := rangesFile{f, [][2]int64{{40, 8}, {8, 8}}}
	if _, err := m.WriteAt([]byte("ABCDEFGHIJ"), 3); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got[40:48]) != "...ABCDE" || string(got[8:16]) != "FGHIJ..." {
		t.Errorf("disk %q", got)
	}
	buf := make([]byte, 16)
	if _, err := m.ReadAt(buf, 0); err != nil || string(buf) != "...ABCDEFGHIJ..." {
		t.Errorf("read %q %v", buf, err)
	}
	if _, err := m.ReadAt(make([]byte, 4), 14); err == nil {
		t.Error("read past the end: no error")
	}
}

func TestParseRoot(t *testing.T) {
	r, err := ParseRoot("x\nIBROOT lvm rootvg/rootlv xfs\r\nIBRANGE 1000 512\nIBRANGE 0 1024\n")
	if err != nil || r.Kind != "lvm" || r.Name != "rootvg/rootlv" || r.FS != "xfs" || len(r.Ranges) != 2 || r.Ranges[1] != [2]int64{0, 1024} {
		t.Errorf("%+v %v", r, err)
	}
	if _, err := ParseRoot("IBRANGE 1 2\n"); err == nil {
		t.Error("no IBROOT: no error")
	}
	if _, err := ParseRoot("IBROOT partition /dev/vda2 xfs\nIBRANGE -1 2\n"); err == nil {
		t.Error("negative range: no error")
	}
}

// TestRangesFileHole: holes of a sparse file are found with SEEK_DATA, so
// extracting a mostly empty root reads only its data.
func TestRangesFileHole(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(8 << 20)
	f.WriteAt([]byte("data"), 5<<20)
	m := rangesFile{f, [][2]int64{{4 << 20, 4 << 20}}}
	for _, tc := range []struct {
		off, n int64
		hole   bool
	}{{0, 1 << 20, true}, {1 << 20, 1 << 20, false}, {2 << 20, 2 << 20, true}} {
		if got, err := m.hole(tc.off, tc.n); err != nil || got != tc.hole {
			t.Errorf("hole(%d, %d) = %v, %v; want %v", tc.off, tc.n, got, err, tc.hole)
		}
	}
}

// TestNormalizeXFSv4: a file system without CRCs (XFS v4) is left alone
// with ErrNotNormalized, which the build reports as a warning.
func TestNormalizeXFSv4(t *testing.T) {
	sb := make([]byte, 4096)
	copy(sb, "XFSB")
	sb[101] = 4 // versionnum low nibble
	p := filepath.Join(t.TempDir(), "v4")
	os.WriteFile(p, sb, 0o644)
	f, _ := os.OpenFile(p, os.O_RDWR, 0)
	defer f.Close()
	if _, err := NormalizeXFS(f, f, 0); !errors.Is(err, ErrNotNormalized) {
		t.Errorf("v4: %v", err)
	}
}
