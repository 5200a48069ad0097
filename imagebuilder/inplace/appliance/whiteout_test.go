package main

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWhiteout(t *testing.T) {
	for name, want := range map[string]string{
		"etc/.wh.hostname": "etc/hostname",
		".wh.autorelabel":  "autorelabel",
		"etc/hostname":     "",
	} {
		got, err := whiteout(name)
		if err != nil || got != want {
			t.Errorf("whiteout(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, bad := range []string{"etc/.wh.", "etc/.wh..wh..opq"} {
		if _, err := whiteout(bad); err == nil {
			t.Errorf("whiteout(%q): no error", bad)
		}
	}
}

// TestTrash: a removed directory goes with its contents, first into the
// trash, then away; a path through a symlink that points out of the root is
// resolved inside it, so nothing outside is removed.
func TestTrash(t *testing.T) {
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	for _, d := range []string{root + "/var/log/apt/deep", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(root+"/var/log/apt/deep/x.log", []byte("x"), 0o644)
	os.WriteFile(root+"/var/log/keep", []byte("x"), 0o644)
	os.WriteFile(outside+"/victim", []byte("x"), 0o644)
	os.Symlink(outside, root+"/escape")
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	bin, err := openTrash(fd)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"var/log/apt", "escape/victim", "missing/file"} {
		if err := bin.remove(fd, p); err != nil {
			t.Errorf("remove(%s): %v", p, err)
		}
	}
	if _, err := os.Lstat(root + "/" + trashName + "/0/deep/x.log"); err != nil {
		t.Errorf("var/log/apt is not in the trash: %v", err)
	}
	if err := bin.empty(fd); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(root + "/" + trashName); !os.IsNotExist(err) {
		t.Errorf("the trash is still there: %v", err)
	}
	if _, err := os.Lstat(root + "/var/log/apt"); !os.IsNotExist(err) {
		t.Errorf("var/log/apt still there: %v", err)
	}
	if _, err := os.Lstat(root + "/var/log/keep"); err != nil {
		t.Errorf("var/log/keep removed")
	}
	if _, err := os.Lstat(outside + "/victim"); err != nil {
		t.Errorf("a file outside the root was removed")
	}
}
