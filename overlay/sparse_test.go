package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSparseTreeStagesOnlyWhatIsWritten(t *testing.T) {
	base := map[string]*Entry{
		"":           {Kind: KindDir, Mode: 0o755},
		"etc":        {Path: "etc", Kind: KindDir, Mode: 0o755},
		"etc/passwd": {Path: "etc/passwd", Kind: KindFile, Mode: 0o644, Size: 10},
		"usr":        {Path: "usr", Kind: KindDir, Mode: 0o755},
		"usr/lib":    {Path: "usr/lib", Kind: KindDir, Mode: 0o755},
	}
	root := t.TempDir()
	tree := NewSparseTree(root, base)
	if tree.Entries["etc/passwd"] != base["etc/passwd"] {
		t.Fatal("the sparse tree must hold the base's own *Entry values")
	}
	if err := tree.WriteFile("etc/fstab", []byte("x\n"), 0o644, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := tree.MkdirAll("usr/lib/repart.d", 0o755, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := tree.Symlink("/etc/fstab", "usr/lib/repart.d/link"); err != nil {
		t.Fatal(err)
	}
	var staged []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if rel, _ := filepath.Rel(root, p); rel != "." {
			staged = append(staged, rel)
		}
		return err
	})
	if got := strings.Join(staged, " "); got != "etc etc/fstab usr usr/lib usr/lib/repart.d usr/lib/repart.d/link" {
		t.Errorf("staged %q", got)
	}
	if tree.Entries["etc"] != base["etc"] || tree.Entries["usr/lib"] != base["usr/lib"] {
		t.Error("folders made on the host for a write must keep the base's entries")
	}
	if _, err := tree.ReadFile("etc/passwd"); err == nil || !strings.Contains(err.Error(), "cached base layer") {
		t.Errorf("reading a base file of a sparse tree: %v", err)
	}
	if b, err := tree.ReadFile("etc/fstab"); err != nil || string(b) != "x\n" {
		t.Errorf("reading a written file: %q, %v", b, err)
	}
	if err := tree.putHardlink("etc/passwd2", base["etc/passwd"]); err == nil || !strings.Contains(err.Error(), "cached base layer") {
		t.Errorf("a hardlink to a base file: %v", err)
	}
	if err := tree.Remove("etc/passwd"); err != nil {
		t.Fatal(err)
	}
	if _, ok := tree.Entries["etc/passwd"]; ok {
		t.Error("removed base entry is still in the tree")
	}
}
