package disk

import (
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"imagebuilder/overlay"
)

// delta is the debugfs script that turns a layer's filesystem (the base
// entries) into the tree's: what the build removed, replaced or added.
type delta struct {
	fixups
	// Blocks are the blocks the added content needs.
	Blocks int64
	// Removed, Added and Changed count paths.
	Removed, Added, Changed int
}

// planDelta compares the tree's entries with base, the entries the layer's
// filesystem holds. An entry the build touched is a different *Entry value
// (overlay's edits always put a new one), so a path whose value is the same
// is left alone. Removed paths go first (children before parents), then
// added ones (parents first, contents from the tree's staging dir), then
// the metadata of everything added or changed: owners, modes, times
// (epoch), xattrs and hardlink counts.
func planDelta(base map[string]*overlay.Entry, tree *overlay.Tree, epoch int64, blobDir string) (*delta, error) {
	d := &delta{}
	w := &scriptWriter{blobDir: blobDir}
	// debugfs does not run where the caller does: absolute host paths.
	root, err := filepath.Abs(tree.Root)
	if err != nil {
		return nil, err
	}
	var removed, added, changedDirs []string
	for p, old := range base {
		e, ok := tree.Entries[p]
		switch {
		case !ok:
			removed = append(removed, p)
		case e == old:
		case e.Kind == overlay.KindDir && old.Kind == overlay.KindDir:
			changedDirs = append(changedDirs, p)
		default:
			if p == "" {
				return nil, fmt.Errorf("the tree root changed from a %s to a %s", old.Kind, e.Kind)
			}
			removed = append(removed, p)
			added = append(added, p)
		}
	}
	for p, e := range tree.Entries {
		if _, ok := base[p]; !ok {
			added = append(added, p)
			d.Blocks += entryBlocks(e)
		} else if e != base[p] && e.Kind != overlay.KindDir {
			d.Blocks += entryBlocks(e)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(removed)))
	sort.Strings(added)
	sort.Strings(changedDirs)
	d.Removed, d.Added, d.Changed = len(removed), len(added), len(changedDirs)

	cwd := "/"
	cd := func(p string) string {
		if dir := path.Dir("/" + p); dir != cwd {
			w.cmd("cd", []string{dir})
			cwd = dir
		}
		return path.Base(p)
	}
	for _, p := range removed {
		name := cd(p)
		if base[p].Kind == overlay.KindDir {
			w.cmd("rmdir", []string{name})
		} else {
			w.cmd("rm", []string{name})
		}
	}
	// Hardlink targets that gained a name: ln does not count links.
	links := map[string]bool{}
	for _, p := range added {
		e := tree.Entries[p]
		name := cd(p)
		switch e.Kind {
		case overlay.KindDir:
			w.cmd("mkdir", []string{name})
		case overlay.KindFile:
			w.cmd("write", []string{filepath.Join(root, filepath.FromSlash(p)), name})
		case overlay.KindSymlink:
			w.cmd("symlink", []string{name, e.Link})
		case overlay.KindHardlink:
			w.cmd("ln", []string{"/" + e.Link, name})
			links[e.Link] = true
		case overlay.KindCharDev, overlay.KindBlockDev, overlay.KindFifo:
			mknod(w, e, name)
		default:
			return nil, fmt.Errorf("/%s has unknown entry kind %s", p, e.Kind)
		}
		if w.err != nil {
			return nil, fmt.Errorf("tree path /%s: %w", p, w.err)
		}
	}
	if cwd != "/" {
		w.cmd("cd", []string{"/"})
	}
	at := "@" + strconv.FormatInt(epoch, 10)
	meta := append(append([]string(nil), added...), changedDirs...)
	sort.Strings(meta)
	for _, p := range meta {
		e := tree.Entries[p]
		if e.Kind == overlay.KindHardlink {
			continue
		}
		q := "/" + p
		if e.Kind != overlay.KindSymlink {
			w.sif(q, "mode", fmt.Sprintf("0%o", typeBits[e.Kind]|e.Mode&0o7777))
		}
		w.sif(q, "uid", strconv.Itoa(e.UID))
		w.sif(q, "gid", strconv.Itoa(e.GID))
		for _, f := range []string{"atime", "mtime", "ctime"} {
			w.sif(q, f, at)
		}
		var have map[string][]byte
		if old, ok := base[p]; ok && old.Kind == overlay.KindDir && e.Kind == overlay.KindDir {
			have = old.Xattrs
		}
		xattrFixups(w, q, have, e.Xattrs)
		if w.err != nil {
			return nil, fmt.Errorf("tree path %s: %w", q, w.err)
		}
	}
	isAdded := make(map[string]bool, len(added))
	for _, p := range added {
		isAdded[p] = true
	}
	for _, p := range slices.Sorted(maps.Keys(links)) {
		if e, ok := tree.Entries[p]; !ok || e.Kind != overlay.KindFile {
			return nil, fmt.Errorf("hardlinks to /%s: the tree has no regular file there", p)
		}
		// A target written in this build is a new inode: only this build's
		// links name it. Otherwise the base's links (less those removed,
		// which rm counted down) still do.
		n := 1
		for x, e := range tree.Entries {
			if e.Kind == overlay.KindHardlink && e.Link == p && (isAdded[x] || !isAdded[p]) {
				n++
			}
		}
		w.sif("/"+p, "links_count", strconv.Itoa(n))
	}
	// As in a layer: the superblock's write counter depends on the build
	// user; zero it last.
	w.buf.WriteString("ssv kbytes_written 0\n")
	w.commands++
	if w.err != nil {
		return nil, w.err
	}
	d.Script, d.Blobs, d.Commands = w.buf.Bytes(), w.blobs, w.commands
	return d, nil
}

// mknod writes the commands that make device node or fifo e as name in the
// current folder.
func mknod(w *scriptWriter, e *overlay.Entry, name string) {
	p := "/" + e.Path
	switch e.Kind {
	case overlay.KindCharDev, overlay.KindBlockDev:
		if e.DevMajor > 0xfff || e.DevMinor > 0xfffff {
			if w.err == nil {
				w.err = fmt.Errorf("device number %d:%d is beyond Linux's 12-bit major, 20-bit minor", e.DevMajor, e.DevMinor)
			}
			return
		}
		t := "c"
		if e.Kind == overlay.KindBlockDev {
			t = "b"
		}
		if e.DevMajor <= 0xffff && e.DevMinor <= 0xffff {
			w.cmd("mknod", []string{name}, t, strconv.FormatUint(uint64(e.DevMajor), 10), strconv.FormatUint(uint64(e.DevMinor), 10))
			return
		}
		// debugfs's mknod stops at 65535; store the kernel's new-style
		// encoding (i_block[1]) directly.
		w.cmd("mknod", []string{name}, t, "0", "0")
		w.sif(p, "block[1]", strconv.FormatUint(uint64(newEncodeDev(e.DevMajor, e.DevMinor)), 10))
	default:
		w.cmd("mknod", []string{name}, "p")
	}
}
