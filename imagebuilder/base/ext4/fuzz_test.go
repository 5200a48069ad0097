package ext4

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// seedImage is a small ext4 file system made with mkfs.ext4 -d.
func seedImage(f *testing.F) []byte {
	dir := f.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc/sub"), 0o755); err != nil {
		f.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0\n"), 0o644)
	os.Symlink("passwd", filepath.Join(root, "etc/link"))
	img := filepath.Join(dir, "fs.img")
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		f.Fatal("mkfs.ext4 is needed: apt-get install e2fsprogs")
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "1024", "-N", "32", "-d", root, img, "256k").CombinedOutput(); err != nil {
		f.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// FuzzTar: any bytes either fail to open or stream a tar (or an error),
// without panicking or running away.
func FuzzTar(f *testing.F) {
	f.Add(seedImage(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := Open(bytes.NewReader(data))
		if err != nil {
			return
		}
		r := fs.Tar(context.Background())
		io.CopyN(io.Discard, r, 16<<20)
		r.Close()
	})
}
