package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"

	"imagebuilder/overlay"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// extract copies a byte range of a file into a new file (sparse).
func extract(t testing.TB, src string, p Partition) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "part")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(p.Size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, mib)
	zero := make([]byte, mib)
	for off := int64(0); off < p.Size; off += mib {
		if _, err := in.ReadAt(buf, p.Start+off); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, zero) {
			if _, err := f.WriteAt(buf, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// inodeInfo is what debugfs stat says about one path.
type inodeInfo struct {
	Type, Mode, User, Group, Dev string
	Times                        []string
	Xattrs                       string
}

var (
	statTypeRe  = regexp.MustCompile(`Type: (\S+(?: special)?)\s+Mode:\s+(\d+)`)
	statOwnerRe = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)`)
	statDevRe   = regexp.MustCompile(`Device major/minor number: (\S+)`)
	statTimeRe  = regexp.MustCompile(`(?m)^\s*(a|c|m|cr)time: (0x[0-9a-f]+)`)
)

func debugfsStat(t testing.TB, img, p string) inodeInfo {
	t.Helper()
	q, err := dfsQuote(p)
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, "debugfs", "-R", "stat "+q, img)
	m := statTypeRe.FindStringSubmatch(out)
	o := statOwnerRe.FindStringSubmatch(out)
	if m == nil || o == nil {
		t.Fatalf("debugfs stat %s: unexpected output:\n%s", p, out)
	}
	info := inodeInfo{Type: m[1], Mode: m[2], User: o[1], Group: o[2]}
	if d := statDevRe.FindStringSubmatch(out); d != nil {
		info.Dev = d[1]
	}
	for _, tm := range statTimeRe.FindAllStringSubmatch(out, -1) {
		info.Times = append(info.Times, tm[1]+"="+tm[2])
	}
	if i := strings.Index(out, "Extended attributes:"); i >= 0 {
		info.Xattrs = out[i:]
	}
	return info
}

func sha256File(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestWriteRawSmallTree(t *testing.T) {
	for _, tool := range [][2]string{{"mkfs.ext4", "e2fsprogs"}, {"debugfs", "e2fsprogs"}, {"e2fsck", "e2fsprogs"}, {"sgdisk", "gdisk"}, {"fsck.fat", "dosfstools"}, {"qemu-img", "qemu-utils"}, {"blkid", "util-linux"}} {
		needTool(t, tool[0], tool[1])
	}
	if _, err := os.Stat(DefaultSystemdBootEFI); err != nil {
		t.Fatalf("this test needs %s: apt-get install systemd-boot-efi", DefaultSystemdBootEFI)
	}
	ctx := context.Background()
	dir := t.TempDir()
	tree := smallTree(t, t.TempDir())
	out := filepath.Join(dir, "small.raw")
	opts := Options{Seed: "small-tree-seed", SourceDateEpoch: 1700000000}
	res, err := WriteRaw(ctx, testLogger(t), tree, out, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result: size %d MiB, root %d MiB, inodes %d, fixups %d, timings %+v", res.SizeBytes/mib, res.Root.Size/mib, res.RootInodes, res.FixupCommands, res.Timings)
	u := PlanUUIDs(opts.Seed)
	if res.UUIDs != u {
		t.Errorf("Result.UUIDs = %+v, want PlanUUIDs = %+v", res.UUIDs, u)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != res.SizeBytes {
		t.Fatalf("output: %v, size mismatch with %d", err, res.SizeBytes)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("scratch files left next to the output: %v", left)
	}

	t.Run("gpt", func(t *testing.T) {
		v := run(t, "sgdisk", "-v", out)
		if !strings.Contains(v, "No problems found") {
			t.Errorf("sgdisk -v:\n%s", v)
		}
		p := run(t, "sgdisk", "-p", out)
		if !strings.Contains(strings.ToLower(p), strings.ToLower("Disk identifier (GUID): "+u.Disk)) {
			t.Errorf("disk GUID %s not in:\n%s", u.Disk, p)
		}
		for _, part := range []struct {
			n         string
			guid, typ string
			start     int64
		}{
			{"1", u.ESPPart, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", res.ESP.Start},
			{"2", u.RootPart, string(LinuxRootX86_64), res.Root.Start},
		} {
			info := run(t, "sgdisk", "-i", part.n, out)
			if !strings.Contains(info, strings.ToUpper(part.guid)) || !strings.Contains(info, part.typ) {
				t.Errorf("partition %s: want GUID %s type %s in:\n%s", part.n, part.guid, part.typ, info)
			}
			if !strings.Contains(info, fmt.Sprintf("First sector: %d ", part.start/512)) || part.start%mib != 0 {
				t.Errorf("partition %s not at the MiB-aligned sector %d:\n%s", part.n, part.start/512, info)
			}
		}
	})

	root := extract(t, out, res.Root)
	t.Run("ext4", func(t *testing.T) {
		fsck := exec.Command("e2fsck", "-fn", root)
		if b, err := fsck.CombinedOutput(); err != nil {
			t.Errorf("e2fsck -fn: %v\n%s", err, b)
		}
		id := run(t, "blkid", "-p", "-o", "export", root)
		if !strings.Contains(id, "UUID="+u.RootFS) || !strings.Contains(id, "TYPE=ext4") {
			t.Errorf("blkid: want ext4 UUID=%s:\n%s", u.RootFS, id)
		}
		for _, tc := range []struct {
			path string
			want inodeInfo
		}{
			{"/", inodeInfo{Type: "directory", Mode: "0755", User: "0", Group: "0"}},
			{"/tmp", inodeInfo{Type: "directory", Mode: "01777", User: "0", Group: "0"}},
			{"/var/mail", inodeInfo{Type: "directory", Mode: "02775", User: "0", Group: "8"}},
			{"/home/user", inodeInfo{Type: "directory", Mode: "0750", User: "1000", Group: "1000"}},
			{"/etc/shadow", inodeInfo{Type: "regular", Mode: "0640", User: "0", Group: "42"}},
			{"/usr/bin/su", inodeInfo{Type: "regular", Mode: "04755", User: "0", Group: "0"}},
			{"/usr/bin/su-hard", inodeInfo{Type: "regular", Mode: "04755", User: "0", Group: "0"}},
			{"/usr/bin/chage", inodeInfo{Type: "regular", Mode: "02755", User: "0", Group: "42"}},
			{"/usr/bin/su-link", inodeInfo{Type: "symlink", Mode: "0777", User: "5", Group: "6"}},
			{"/odd/with space", inodeInfo{Type: "regular", Mode: "0600", User: "7", Group: "7"}},
			{`/odd/with"quote`, inodeInfo{Type: "regular", Mode: "0600", User: "100000", Group: "100000"}},
			{"/dev/null", inodeInfo{Type: "character special", Mode: "0666", User: "0", Group: "0", Dev: "01:03"}},
			{"/dev/tty", inodeInfo{Type: "character special", Mode: "0666", User: "0", Group: "5", Dev: "05:00"}},
			{"/dev/sda", inodeInfo{Type: "block special", Mode: "0660", User: "0", Group: "6", Dev: "08:00"}},
			{"/odd/fi fo", inodeInfo{Type: "FIFO", Mode: "0620", User: "3", Group: "4"}},
		} {
			t.Run(tc.path, func(t *testing.T) {
				got := debugfsStat(t, root, tc.path)
				if got.Type != tc.want.Type || got.Mode != tc.want.Mode || got.User != tc.want.User || got.Group != tc.want.Group || (tc.want.Dev != "" && got.Dev != tc.want.Dev) {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
				for _, tm := range got.Times {
					if !strings.HasSuffix(tm, "=0x6553f100") { // 1700000000
						t.Errorf("time %s, want the epoch 0x6553f100", tm)
					}
				}
			})
		}
		big := debugfsStat(t, root, "/dev/big")
		if big.Type != "character special" || !strings.Contains(run(t, "debugfs", "-R", "stat /dev/big", root), "260") {
			t.Errorf("/dev/big (260:300000): %+v", big)
		}
		ping := debugfsStat(t, root, "/usr/bin/ping")
		if !strings.Contains(ping.Xattrs, "security.capability (20) = 01 00 00 02 00 20") || !strings.Contains(ping.Xattrs, `user.comment (16) = "a \"quoted\" value"`) {
			t.Errorf("ping xattrs:\n%s", ping.Xattrs)
		}
		if fifo := debugfsStat(t, root, "/odd/fi fo"); !strings.Contains(fifo.Xattrs, `user.x (1) = "1"`) {
			t.Errorf("fifo xattrs:\n%s", fifo.Xattrs)
		}
	})

	t.Run("esp", func(t *testing.T) {
		esp := extract(t, out, res.ESP)
		if b, err := exec.Command("fsck.fat", "-n", "-v", esp).CombinedOutput(); err != nil {
			t.Errorf("fsck.fat -n: %v\n%s", err, b)
		}
		id := run(t, "blkid", "-p", "-o", "export", esp)
		if !strings.Contains(id, "UUID="+u.ESPVolumeID) || !strings.Contains(id, "TYPE=vfat") {
			t.Errorf("blkid: want vfat UUID=%s:\n%s", u.ESPVolumeID, id)
		}
		d, err := diskfs.Open(out, diskfs.WithOpenMode(diskfs.ReadOnly))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		fs, err := d.GetFilesystem(1)
		if err != nil {
			t.Fatal(err)
		}
		read := func(p string) string {
			f, err := fs.OpenFile(p, os.O_RDONLY)
			if err != nil {
				t.Fatalf("ESP %s: %v", p, err)
			}
			b, err := io.ReadAll(f)
			if err != nil {
				t.Fatalf("ESP %s: %v", p, err)
			}
			return string(b)
		}
		efi, err := os.ReadFile(DefaultSystemdBootEFI)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ path, want string }{
			{"/EFI/BOOT/BOOTX64.EFI", string(efi)},
			{"/loader/loader.conf", "timeout 0\ndefault imagebuilder.conf\neditor no\n"},
			{"/loader/entries/imagebuilder.conf", "title Test Linux 1\nversion 6.1.0-13-amd64\n" +
				"linux /imagebuilder/6.1.0-13-amd64/linux\ninitrd /imagebuilder/6.1.0-13-amd64/initrd\n" +
				"options root=PARTUUID=" + u.RootPart + " ro console=tty0 console=ttyS0,115200\n"},
			{"/imagebuilder/6.1.0-13-amd64/linux", "new kernel"},
			{"/imagebuilder/6.1.0-13-amd64/initrd", "new initrd"},
		} {
			t.Run(tc.path, func(t *testing.T) {
				if got := read(tc.path); got != tc.want {
					if len(got) > 200 {
						got = got[:200] + "..."
					}
					t.Errorf("got %q", got)
				}
			})
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // staging times differ from the first tree
		again := filepath.Join(dir, "again.raw")
		tree2 := smallTree(t, t.TempDir())
		if _, err := WriteRaw(ctx, nil, tree2, again, opts); err != nil {
			t.Fatal(err)
		}
		if a, b := sha256File(t, out), sha256File(t, again); a != b {
			t.Errorf("same tree and seed, different images: %s vs %s", a, b)
		}
		other := filepath.Join(dir, "other.raw")
		o2 := opts
		o2.Seed = "another seed"
		if _, err := WriteRaw(ctx, nil, tree2, other, o2); err != nil {
			t.Fatal(err)
		}
		if sha256File(t, out) == sha256File(t, other) {
			t.Errorf("a different seed gave the same image")
		}
	})

	t.Run("qcow2", func(t *testing.T) {
		q := filepath.Join(dir, "small.qcow2")
		start := time.Now()
		if err := ConvertQcow2(ctx, out, q); err != nil {
			t.Fatal(err)
		}
		t.Logf("qcow2 convert took %v", time.Since(start))
		run(t, "qemu-img", "check", q)
		info := run(t, "qemu-img", "info", q)
		if !strings.Contains(info, "file format: qcow2") || !strings.Contains(info, fmt.Sprintf("(%d bytes)", res.SizeBytes)) {
			t.Errorf("qemu-img info:\n%s", info)
		}
	})
}

// failingRunner runs real tools except one, which fails.
type failingRunner struct {
	fail   string
	cancel context.CancelFunc
}

func (r failingRunner) Run(ctx context.Context, c Cmd) ([]byte, []byte, error) {
	if c.Tool.Name == r.fail {
		if r.cancel != nil {
			r.cancel()
			return nil, nil, ctx.Err()
		}
		return nil, []byte("simulated failure"), errors.New("simulated failure")
	}
	return ExecRunner{}.Run(ctx, c)
}

func TestWriteRawLeavesNothingOnFailure(t *testing.T) {
	needTool(t, "mkfs.ext4", "e2fsprogs")
	for _, tc := range []struct {
		name, fail string
		cancel     bool
	}{
		{name: "mkfs fails", fail: "mkfs.ext4"},
		{name: "debugfs fails", fail: "debugfs"},
		{name: "context cancelled during debugfs", fail: "debugfs", cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := failingRunner{fail: tc.fail}
			if tc.cancel {
				r.cancel = cancel
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "img.raw")
			if err := os.WriteFile(out, []byte("previous image"), 0o644); err != nil {
				t.Fatal(err)
			}
			tools := DefaultTools()
			tools.Runner = r
			_, err := WriteRaw(ctx, nil, smallTree(t, t.TempDir()), out, Options{Seed: "s", Tools: tools})
			if err == nil {
				t.Fatal("WriteRaw succeeded with a failing tool")
			}
			if tc.cancel && !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			if b, _ := os.ReadFile(out); string(b) != "previous image" {
				t.Errorf("the previous output was touched")
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
				t.Errorf("scratch files left: %v", left)
			}
		})
	}
}

func TestWriteRawErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		tree func(t *testing.T) *overlay.Tree
		opts Options
		err  string
	}{
		{
			name: "no seed",
			tree: func(t *testing.T) *overlay.Tree { return smallTree(t, t.TempDir()) },
			err:  "Options.Seed is required",
		},
		{
			name: "no kernel",
			tree: func(t *testing.T) *overlay.Tree { return overlay.NewTree(t.TempDir()) },
			opts: Options{Seed: "s"},
			err:  "the tree has no kernel",
		},
		{
			name: "missing systemd-boot",
			tree: func(t *testing.T) *overlay.Tree { return smallTree(t, t.TempDir()) },
			opts: Options{Seed: "s", Tools: Tools{SystemdBootEFI: "/nonexistent/systemd-bootx64.efi"}},
			err:  "apt-get install systemd-boot-efi",
		},
		{
			name: "missing mkfs",
			tree: func(t *testing.T) *overlay.Tree { return smallTree(t, t.TempDir()) },
			opts: Options{Seed: "s", Tools: Tools{MkfsExt4: Tool{Name: "mkfs.ext4", Path: "/nonexistent/mkfs.ext4", Package: "e2fsprogs"}}},
			err:  "apt-get install e2fsprogs",
		},
		{
			name: "disk too small",
			tree: func(t *testing.T) *overlay.Tree { return smallTree(t, t.TempDir()) },
			opts: Options{Seed: "s", SizeBytes: 130 * mib},
			err:  "disk size 130 MiB is too small",
		},
		{
			name: "bad entry id",
			tree: func(t *testing.T) *overlay.Tree { return smallTree(t, t.TempDir()) },
			opts: Options{Seed: "s", EntryID: "a/b"},
			err:  `EntryID "a/b"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.raw")
			_, err := WriteRaw(context.Background(), nil, tc.tree(t), out, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if _, serr := os.Stat(out); serr == nil {
				t.Errorf("output written despite the error")
			}
		})
	}
}
