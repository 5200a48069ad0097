// Package hosttree describes what a cluster install leaves on a host — the
// tree under the prefix, the unit links in /etc/systemd/system and
// /etc/cluster/role — so tests can compare install.sh's result with the
// overlay's (the image path) and check an install against its manifest.
package hosttree

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/bundle"
)

// Node is one path: its type, permission bits, link target, content digest.
type Node struct {
	Type   string // dir, file, symlink
	Mode   fs.FileMode
	Target string
	SHA256 string
}

func (n Node) String() string {
	switch n.Type {
	case "symlink":
		return "symlink -> " + n.Target
	case "file":
		return fmt.Sprintf("file %04o sha256:%.12s", n.Mode, n.SHA256)
	}
	return fmt.Sprintf("%s %04o", n.Type, n.Mode)
}

// Snapshot maps a key to its node. Keys: "prefix/<path below the prefix>",
// "etc/systemd/system/<unit link>", "etc/systemd/system/multi-user.target.wants/cluster.target",
// "etc/cluster/role", "etc/sysusers.d/<link>", "etc/tmpfiles.d/<link>".
type Snapshot map[string]Node

// unitLink reports whether a link in /etc/systemd/system is the install's.
func unitLink(prefix, key, target string) bool {
	for _, d := range overlay.ConfigDirs {
		if path.Dir(key) == "etc/"+d && strings.HasPrefix(target, prefix+"/"+d+"/") {
			return true
		}
	}
	return strings.HasPrefix(target, prefix+"/systemd/") ||
		(key == "etc/systemd/system/multi-user.target.wants/cluster.target" && target == "/etc/systemd/system/cluster.target")
}

func digest(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// FromDisk reads a host root: the prefix is followed if it is a symlink.
func FromDisk(root, prefix string) (Snapshot, error) {
	s := Snapshot{}
	top, err := filepath.EvalSymlinks(filepath.Join(root, prefix))
	if err != nil {
		return nil, fmt.Errorf("resolving the prefix: %w", err)
	}
	err = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(top, p)
		if rel == "." {
			return nil
		}
		n, err := nodeOf(p)
		if err != nil {
			return err
		}
		s["prefix/"+filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		return nil, err
	}
	dirs := []string{"etc/systemd/system", "etc/systemd/system/multi-user.target.wants"}
	for _, d := range overlay.ConfigDirs {
		dirs = append(dirs, "etc/"+d)
	}
	for _, dir := range dirs {
		ents, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range ents {
			key := dir + "/" + e.Name()
			if e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			t, err := os.Readlink(filepath.Join(root, key))
			if err != nil {
				return nil, err
			}
			if unitLink(prefix, key, t) {
				s[key] = Node{Type: "symlink", Target: t}
			}
		}
	}
	if n, err := nodeOf(filepath.Join(root, "etc/cluster/role")); err == nil {
		s["etc/cluster/role"] = n
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	return s, nil
}

func nodeOf(p string) (Node, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return Node{}, err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		return Node{Type: "symlink", Target: t}, err
	case fi.IsDir():
		return Node{Type: "dir", Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}, nil
	case fi.Mode().IsRegular():
		sum, err := digest(p)
		return Node{Type: "file", Mode: fi.Mode().Perm(), SHA256: sum}, err
	}
	return Node{}, fmt.Errorf("%s: unexpected file type %v", p, fi.Mode().Type())
}

// FromTree reads an overlay tree (the image path) the same way. Modes come
// from the tree's entries, contents from its staging folder; hardlinks read
// as the files they are.
func FromTree(t *overlay.Tree, prefix string) (Snapshot, error) {
	s := Snapshot{}
	pre := overlay.CleanRel(prefix)
	for _, e := range t.Sorted() {
		var key string
		switch {
		case strings.HasPrefix(e.Path, pre+"/"):
			key = "prefix/" + strings.TrimPrefix(e.Path, pre+"/")
		case path.Dir(e.Path) == "etc/systemd/system" || path.Dir(e.Path) == "etc/systemd/system/multi-user.target.wants" ||
			path.Dir(e.Path) == "etc/sysusers.d" || path.Dir(e.Path) == "etc/tmpfiles.d":
			if e.Kind != overlay.KindSymlink || !unitLink(prefix, e.Path, e.Link) {
				continue
			}
			key = e.Path
		case e.Path == "etc/cluster/role":
			key = e.Path
		default:
			continue
		}
		switch e.Kind {
		case overlay.KindDir:
			s[key] = Node{Type: "dir", Mode: e.FileMode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		case overlay.KindSymlink:
			s[key] = Node{Type: "symlink", Target: e.Link}
		case overlay.KindFile, overlay.KindHardlink:
			sum, err := digest(filepath.Join(t.Root, filepath.FromSlash(e.Path)))
			if err != nil {
				return nil, err
			}
			s[key] = Node{Type: "file", Mode: fs.FileMode(e.Mode & 0o777), SHA256: sum}
		default:
			return nil, fmt.Errorf("%s: unexpected %v in a bundle install", e.Path, e.Kind)
		}
	}
	return s, nil
}

// Diff lists the differences between a and b, sorted; empty when equal.
func Diff(a, b Snapshot) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		x, okA := a[k]
		y, okB := b[k]
		switch {
		case !okA:
			out = append(out, fmt.Sprintf("%s: only in the second (%v)", k, y))
		case !okB:
			out = append(out, fmt.Sprintf("%s: only in the first (%v)", k, x))
		case x != y:
			out = append(out, fmt.Sprintf("%s: %v != %v", k, x, y))
		}
	}
	sort.Strings(out)
	return out
}

// CheckPrefix checks that the tree at the prefix (followed if a symlink) is
// exactly what its manifest.json lists — no path missing, none extra, every
// type, mode, size, digest and link target as recorded — and returns the
// manifest.
func CheckPrefix(root, prefix string) (*bundle.Manifest, error) {
	top, err := filepath.EvalSymlinks(filepath.Join(root, prefix))
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(top, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m bundle.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	snap, err := FromDisk(root, prefix)
	if err != nil {
		return nil, err
	}
	want := Snapshot{}
	for _, e := range m.Entries {
		n := Node{Type: e.Type, Mode: fs.FileMode(e.Mode), SHA256: e.SHA256, Target: e.Target}
		switch e.Type {
		case "hardlink":
			n = Node{Type: "file", Mode: fs.FileMode(e.Mode), SHA256: e.SHA256}
		case "symlink":
			n = Node{Type: "symlink", Target: e.Target}
		case "dir":
			n.SHA256, n.Target = "", ""
		}
		want["prefix/"+e.Path] = n
	}
	got := Snapshot{}
	for k, v := range snap {
		if strings.HasPrefix(k, "prefix/") && k != "prefix/manifest.json" {
			got[k] = v
		}
	}
	if d := Diff(want, got); len(d) > 0 {
		if len(d) > 10 {
			d = append(d[:10], fmt.Sprintf("... %d more", len(d)-10))
		}
		return nil, fmt.Errorf("the tree at %s does not match its manifest.json:\n  %s", prefix, strings.Join(d, "\n  "))
	}
	return &m, nil
}
