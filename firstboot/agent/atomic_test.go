package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "" means no file before
		data     string
		perm     os.FileMode
	}{
		{name: "new file in new dirs", data: "DETECTED_IP=10.0.2.15\n", perm: 0o644},
		{name: "replace", existing: "old content that is longer\n", data: "new\n", perm: 0o600},
		{name: "empty", existing: "x", data: "", perm: 0o644},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run", "cluster")
			path := filepath.Join(dir, "ip.env")
			if tc.existing != "" {
				writeFile(t, path, tc.existing, 0o644)
			}
			if err := WriteFileAtomic(path, []byte(tc.data), tc.perm); err != nil {
				t.Fatalf("WriteFileAtomic: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.data {
				t.Fatalf("content = %q, %v; want %q", got, err, tc.data)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.perm {
				t.Errorf("mode = %v, want %v", fi.Mode().Perm(), tc.perm)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only ip.env (no temporary files left)", len(entries))
			}
		})
	}
}

func TestWriteFileAtomicFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "target")
	// A directory in the way makes the final rename fail.
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(path, "keep"), "x", 0o644)
	if err := WriteFileAtomic(path, []byte("data"), 0o644); err == nil {
		t.Fatal("WriteFileAtomic over a non-empty directory succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "target" {
		t.Errorf("directory holds %v, want only the untouched target", entries)
	}
}

func TestWriteFileAtomicParentIsFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "file"), "x", 0o644)
	if err := WriteFileAtomic(filepath.Join(dir, "file", "child"), []byte("data"), 0o644); err == nil {
		t.Fatal("WriteFileAtomic below a regular file succeeded")
	}
}
