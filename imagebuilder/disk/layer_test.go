package disk

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"imagebuilder/imagebuilder/base/ext4"
	"imagebuilder/overlay"
)

// rootListing reads the root filesystem of a raw disk with the project's
// own ext4 reader and lists every path with its type, mode, owners, link,
// device, xattrs and content digest.
func rootListing(t *testing.T, raw string, p Partition) map[string]string {
	t.Helper()
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := ext4.Open(io.NewSectionReader(f, p.Start, p.Size))
	if err != nil {
		t.Fatal(err)
	}
	r := fs.Tar(context.Background())
	defer r.Close()
	tr := tar.NewReader(r)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatal(err)
		}
		var x []string
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				x = append(x, k+"="+hex.EncodeToString([]byte(v)))
			}
		}
		sort.Strings(x)
		out[h.Name] = fmt.Sprintf("type=%c mode=%o uid=%d gid=%d link=%q dev=%d:%d xattrs=%v size=%d sha=%x",
			h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, h.Devmajor, h.Devminor, x, h.Size, sum.Sum(nil)[:8])
	}
	return out
}

// changeTree makes the changes a build makes on top of a base, and more:
// new folders, files with setuid bits and xattrs, symlinks, a hardlink, a
// fifo; a replaced file; a removed folder holding a fifo and files; a
// folder whose metadata changed.
func changeTree(t *testing.T, tree *overlay.Tree) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tree.MkdirAll("opt/cluster/bin", 0o755, 0, 0))
	must(tree.WriteFile("opt/cluster/bin/tool", []byte("#!/bin/sh\necho tool\n"), 0o4750, 0, 12))
	must(tree.WriteFile("opt/cluster/big", []byte(strings.Repeat("0123456789abcdef", 40000)), 0o644, 3, 4))
	tree.Entries["opt/cluster/big"].Xattrs = map[string][]byte{"user.big": []byte(strings.Repeat("v", 300))}
	must(tree.Symlink("/opt/cluster/bin/tool", "etc/tool-link"))
	must(tree.Symlink(strings.Repeat("long/", 20)+"target", "opt/cluster/long-link"))
	big := *tree.Entries["opt/cluster/big"]
	must(os.Link(filepath.Join(tree.Root, "opt/cluster/big"), filepath.Join(tree.Root, "opt/cluster/big-hard")))
	big.Path, big.Kind, big.Link = "opt/cluster/big-hard", overlay.KindHardlink, "opt/cluster/big"
	tree.Entries[big.Path] = &big
	tree.Entries["opt/cluster/fifo"] = &overlay.Entry{Path: "opt/cluster/fifo", Kind: overlay.KindFifo, Mode: 0o600, UID: 9}
	must(tree.WriteFile("etc/shadow", []byte("root:!:19000::::::\n"), 0o600, 0, 42))
	must(tree.Remove("odd"))
	must(tree.Remove("usr/bin/su-hard"))
	must(tree.MkdirAll("home/user", 0, 0, 0))
	home := *tree.Entries["home/user"]
	home.Mode, home.UID = 0o700, 1001
	home.Xattrs = map[string][]byte{"user.home": []byte("yes")}
	tree.Entries["home/user"] = &home
}

func TestWriteRawLayeredMatchesWholeTree(t *testing.T) {
	for _, tool := range [][2]string{{"mkfs.ext4", "e2fsprogs"}, {"debugfs", "e2fsprogs"}, {"e2fsck", "e2fsprogs"}, {"resize2fs", "e2fsprogs"}} {
		needTool(t, tool[0], tool[1])
	}
	ctx := context.Background()
	dir := t.TempDir()
	// 300 MiB: a root filesystem of several block groups, so backup
	// superblocks exist.
	opts := Options{Seed: "layered", SourceDateEpoch: 1700000000, BIOS: false, SizeBytes: 300 << 20}

	// The layer: the base tree, formatted once.
	baseTree := smallTree(t, mkdir(t, filepath.Join(dir, "base")))
	layer, err := BuildLayer(ctx, testLogger(t), baseTree, filepath.Join(dir, "layers", "l1"), LayerOptions{Key: "k1", SourceDateEpoch: opts.SourceDateEpoch})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := OpenLayer(layer.Dir, "k1"); err != nil || again.Meta.Digest != layer.Meta.Digest {
		t.Fatalf("OpenLayer: %v", err)
	}
	if _, err := OpenLayer(layer.Dir, "k2"); err == nil {
		t.Error("OpenLayer accepted a layer made for another key")
	}
	if p := layer.SameEntries(baseTree.Entries); p != "" {
		t.Fatalf("the layer's entries differ from its tree at %s", p)
	}

	// A build on the fully staged base, and one on a sparse tree that has
	// only the layer's entries.
	lower := map[string]*overlay.Entry{}
	for k, v := range baseTree.Entries {
		lower[k] = v
	}
	full := baseTree
	changeTree(t, full)
	sparseLower := layer.EntryMap()
	sparse := overlay.NewSparseTree(mkdir(t, filepath.Join(dir, "sparse")), sparseLower)
	changeTree(t, sparse)

	// The reference: the changed tree written whole (mkfs.ext4 -d).
	ref := filepath.Join(dir, "ref.raw")
	refRes, err := WriteRaw(ctx, testLogger(t), full, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := rootListing(t, ref, refRes.Root)
	for _, gone := range []string{"./odd", "./odd/fi fo", "./usr/bin/su-hard"} {
		if _, ok := want[gone]; ok {
			t.Fatalf("reference still holds %s", gone)
		}
	}

	for _, tc := range []struct {
		name  string
		lower map[string]*overlay.Entry
		tree  *overlay.Tree
	}{{"full", lower, full}, {"sparse", sparseLower, sparse}} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".raw")
			res, err := WriteRawLayered(ctx, testLogger(t), layer, tc.lower, tc.tree, out, opts)
			if err != nil {
				t.Fatal(err)
			}
			// The layer was sized for the base (plus slack), the reference
			// for the whole tree: sizes may differ, never the contents.
			if res.Root.Start != refRes.Root.Start || res.Root.Size < layer.Meta.Bytes {
				t.Errorf("root partition %+v, layer %d bytes", res.Root, layer.Meta.Bytes)
			}
			got := rootListing(t, out, res.Root)
			for p, w := range want {
				if got[p] != w {
					t.Errorf("%s:\n  layered %s\n  whole   %s", p, got[p], w)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("%s is in the layered image only: %s", p, got[p])
				}
			}
			img := extract(t, out, res.Root)
			if o, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
				t.Errorf("e2fsck of the layered root: %v\n%s", err, o)
			}
			// The boot's fsck (-p, no -f) must find it clean, not force a
			// check (which on a mounted root ends in a reboot): the backup
			// superblocks agree with the primary. (-n would not compare
			// them; img is a copy.)
			if o, err := exec.Command("e2fsck", "-p", img).CombinedOutput(); err != nil || !strings.Contains(string(o), ": clean,") {
				t.Errorf("e2fsck -p of the layered root does not skip the check: %v\n%s", err, o)
			}
			if st := debugfsStat(t, img, "/opt/cluster/bin/tool"); strings.Join(st.Times, " ") != "c=0x6553f100 a=0x6553f100 m=0x6553f100 cr=0x6553f100" {
				t.Errorf("times of an added file: %v", st.Times)
			}
			if uuid := strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "UUID", img)); uuid != res.UUIDs.RootFS {
				t.Errorf("root filesystem UUID %s, want %s", uuid, res.UUIDs.RootFS)
			}
		})
	}
	a, b := sha256File(t, filepath.Join(dir, "full.raw")), sha256File(t, filepath.Join(dir, "sparse.raw"))
	if a != b {
		t.Errorf("the sparse tree gave another image than the staged one: %s vs %s", b, a)
	}
}

func TestLayerCorruptionIsDetected(t *testing.T) {
	needTool(t, "mkfs.ext4", "e2fsprogs")
	ctx := context.Background()
	dir := t.TempDir()
	tree := smallTree(t, mkdir(t, filepath.Join(dir, "base")))
	layer, err := BuildLayer(ctx, nil, tree, filepath.Join(dir, "l"), LayerOptions{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(layer.Image(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x42}, 1024+200); err != nil { // inside the superblock
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out.raw")
	_, err = WriteRawLayered(ctx, nil, layer, tree.Entries, tree, out, Options{Seed: "s"})
	var lc *LayerCorruptError
	if !errors.As(err, &lc) || lc.Dir != layer.Dir {
		t.Fatalf("err = %v, want a LayerCorruptError for %s", err, layer.Dir)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("a disk was left at %s", out)
	}
}

func TestSparseDigestIgnoresStorage(t *testing.T) {
	dir := t.TempDir()
	holes := filepath.Join(dir, "holes")
	zeros := filepath.Join(dir, "zeros")
	data := []byte("data in the third block")
	f, _ := os.Create(holes)
	f.Truncate(5 * digestBlock)
	f.WriteAt(data, 2*digestBlock+10)
	f.Close()
	buf := make([]byte, 5*digestBlock)
	copy(buf[2*digestBlock+10:], data)
	if err := os.WriteFile(zeros, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := sparseDigest(context.Background(), holes)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sparseDigest(context.Background(), zeros)
	if a != b {
		t.Errorf("digest of a sparse file %s, of the same bytes written out %s", a, b)
	}
	buf[4*digestBlock] = 1
	os.WriteFile(zeros, buf, 0o644)
	if c, _ := sparseDigest(context.Background(), zeros); c == a {
		t.Error("a changed byte did not change the digest")
	}
	os.Truncate(zeros, 6*digestBlock)
	if d, _ := sparseDigest(context.Background(), holes); d != a {
		t.Error("digest is not stable")
	}
}

func TestShiftCopyMatchesInsertRange(t *testing.T) {
	dir := t.TempDir()
	content := make([]byte, 9*mib+123)
	for i := range content {
		if (i/mib)%3 != 1 { // every third MiB stays zero
			content[i] = byte(i*7 + i/5000)
		}
	}
	for _, by := range []int64{mib, 5 * mib, 20 * mib} {
		p := filepath.Join(dir, fmt.Sprint(by))
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := shiftCopy(context.Background(), f, int64(len(content)), by); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, _ := os.ReadFile(p)
		want := append(make([]byte, by), content...)
		if string(got) != string(want) {
			t.Errorf("shift by %d: content differs", by)
		}
	}
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWriteRawLayeredRelativePaths builds with every path relative to the
// working directory (`imagebuilder build --out build/images`): the tools
// run elsewhere and must still find the image, the staged files and the
// xattr values.
func TestWriteRawLayeredRelativePaths(t *testing.T) {
	needTool(t, "mkfs.ext4", "e2fsprogs")
	t.Chdir(t.TempDir())
	ctx := context.Background()
	baseTree := smallTree(t, mkdir(t, "base"))
	layer, err := BuildLayer(ctx, nil, baseTree, filepath.Join("layers", "l"), LayerOptions{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	tree := overlay.NewSparseTree(mkdir(t, "sparse"), layer.EntryMap())
	lower := map[string]*overlay.Entry{}
	for k, v := range tree.Entries {
		lower[k] = v
	}
	changeTree(t, tree)
	mkdir(t, "out")
	res, err := WriteRawLayered(ctx, nil, layer, lower, tree, filepath.Join("out", "rel.raw"), Options{Seed: "rel"})
	if err != nil {
		t.Fatal(err)
	}
	got := rootListing(t, filepath.Join("out", "rel.raw"), res.Root)
	if !strings.Contains(got["./opt/cluster/big"], "user.big") || !strings.HasPrefix(got["./opt/cluster/bin/tool"], "type=0 mode=4750") {
		t.Errorf("added files: big %s, tool %s", got["./opt/cluster/big"], got["./opt/cluster/bin/tool"])
	}
}
