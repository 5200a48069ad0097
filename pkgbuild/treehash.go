package pkgbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"imagebuilder/pkgbuild/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// TreeDigest hashes a directory tree: every path relative to dir (sorted), its
// type, for files the executable bit and content, for symlinks the target.
// Ownership, timestamps and other mode bits do not count.
func TreeDigest(dir string) (string, error) {
	type node struct {
		rel  string
		path string
		d    fs.DirEntry
	}
	var nodes []node
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		nodes = append(nodes, node{filepath.ToSlash(rel), p, d})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing tree %s: %w", dir, err)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].rel < nodes[j].rel })
	h := sha256.New()
	field(h, "tree", "1")
	for _, n := range nodes {
		field(h, "path", n.rel)
		switch t := n.d.Type(); {
		case t.IsDir():
			field(h, "type", "dir")
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(n.path)
			if err != nil {
				return "", fmt.Errorf("hashing tree %s: %w", dir, err)
			}
			field(h, "type", "symlink")
			field(h, "target", target)
		case t.IsRegular():
			fi, err := n.d.Info()
			if err != nil {
				return "", fmt.Errorf("hashing tree %s: %w", dir, err)
			}
			sum, err := fileDigest(n.path)
			if err != nil {
				return "", fmt.Errorf("hashing tree %s: %w", dir, err)
			}
			field(h, "type", "file")
			field(h, "exec", strconv.FormatBool(fi.Mode()&0o111 != 0))
			field(h, "sha256", sum)
		default:
			return "", fmt.Errorf("hashing tree %s: %s is a %v, only files, directories and symlinks are allowed", dir, n.rel, t)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileDigest(p string) (string, error) { return atomicfile.SHA256(p) }
