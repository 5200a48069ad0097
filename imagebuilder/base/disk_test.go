package base

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/atomicfile"
)

// TestDiskKinds: the ext4 root of a GPT raw image, and of its qcow2
// conversion, reads back as the very tree it was made from.
func TestDiskKinds(t *testing.T) {
	root := fixtureRoot(t)
	ctx := context.Background()
	dirBase, err := Open(ctx, root, nil)
	must(t, err)
	want := manifestOf(t, dirBase)
	raw := rawDisk(t, root, 32)
	qcow := filepath.Join(t.TempDir(), "disk.qcow2")
	run(t, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow)
	for _, ref := range []string{raw, "raw:" + raw, qcow, "qcow2:" + qcow} {
		b, err := Open(ctx, ref, nil)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		file := strings.TrimPrefix(strings.TrimPrefix(ref, "raw:"), "qcow2:")
		sum, _ := atomicfile.SHA256(file)
		if b.Digest != "sha256:"+sum {
			t.Errorf("%s: digest %s, want the file's sha256", ref, b.Digest)
		}
		got := manifestOf(t, b)
		// mkfs.ext4 -d gives the root directory its own mode; compare below it.
		sameManifest(t, ref, dropRoot(got), dropRoot(want))
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

func dropRoot(m []string) []string {
	var out []string
	for _, l := range m {
		if !strings.HasPrefix(l, "/ ") {
			out = append(out, l)
		}
	}
	return out
}

// TestHostileDiskBase: a disk image whose root holds an escaping symlink is
// refused by overlay.Apply naming the entry.
func TestHostileDiskBase(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.Symlink("../../../../../../etc/shadow", filepath.Join(root, "etc/steal")))
	raw := rawDisk(t, root, 8)
	b, err := Open(context.Background(), raw, nil)
	must(t, err)
	stage := filepath.Join(t.TempDir(), "root")
	must(t, os.Mkdir(stage, 0o755))
	err = b.Apply(context.Background(), overlay.NewTree(stage))
	if err == nil || !strings.Contains(err.Error(), `tar entry "./etc/steal": symlink target "../../../../../../etc/shadow" points outside the root`) {
		t.Fatalf("err = %v", err)
	}
}

func TestDiskWithoutExt4Root(t *testing.T) {
	img := filepath.Join(t.TempDir(), "empty.raw")
	f, err := os.Create(img)
	must(t, err)
	must(t, f.Truncate(8<<20))
	must(t, f.Close())
	run(t, "sgdisk", "-n", "1:2048:0", "-t", "1:8300", img)
	_, err = Open(context.Background(), img, nil)
	if err == nil || !strings.Contains(err.Error(), "no ext4 Linux root partition found (partitions: 1:0FC63DAF-8483-4772-8E79-3D69D8477DE4); XFS and LVM roots need the in-place path") {
		t.Fatalf("err = %v", err)
	}
}
