package archive

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader feeds arbitrary tar streams to the strict and lenient readers and
// to Extract: nothing may panic, every accepted entry must satisfy the reader's
// promises, and extraction must never write outside its directory.
func FuzzReader(f *testing.F) {
	seeds := [][]member{
		{dir("bin"), file("bin/a", "x"), hardlink("bin/b", "bin/a"), symlink("bin/c", "a")},
		{file("../x", "evil")},
		{file("/etc/x", "evil")},
		{symlink("evil", "../../.."), file("evil/x", "evil")},
		{hardlink("x", "../../etc/passwd")},
		{dir("./"), file("./p/q", "lenient"), symlink("./p/r", "/abs")},
	}
	for _, s := range seeds {
		f.Add(rawTar(f, s...))
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lenient := range []bool{false, true} {
			p := Policy{Prefix: prefix, Lenient: lenient}
			checkAccepted(t, data, p)
			dest := filepath.Join(root, "dest")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			Extract(NewReader(bytes.NewReader(data), p), dest)
			assertOnly(t, root, "dest")
			filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					os.Chmod(path, 0o755)
				}
				return nil
			})
			if err := os.RemoveAll(dest); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// checkAccepted reads data under p and checks every entry it accepts.
func checkAccepted(t *testing.T, data []byte, p Policy) {
	r := NewReader(bytes.NewReader(data), p)
	types := map[string]Type{}
	for {
		e, err := r.Next()
		if err != nil {
			return
		}
		if err := CheckName(e.Name); err != nil {
			t.Fatalf("accepted bad name: %v", err)
		}
		if par := parent(e.Name); par != "" && !p.Lenient && types[par] != TypeDir {
			t.Fatalf("accepted %q without parent directory", e.Name)
		}
		switch e.Type {
		case TypeSymlink:
			if !p.Lenient {
				if err := CheckSymlink(e.Name, e.Linkname, "", p.Prefix); err != nil {
					t.Fatalf("accepted escaping symlink: %v", err)
				}
			}
		case TypeHardlink:
			if types[e.Linkname] != TypeFile {
				t.Fatalf("accepted hardlink %q to %q", e.Name, e.Linkname)
			}
		case TypeFile:
			io.Copy(io.Discard, r)
		}
		types[e.Name] = e.Type
	}
}
