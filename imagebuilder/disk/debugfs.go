package disk

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"imagebuilder/overlay"
)

// maxScriptLine keeps every line of the script below debugfs's line buffer
// (BUFSIZ, 8192 bytes on glibc); a longer line would be split silently.
const maxScriptLine = 8000

// fixups is a debugfs script that makes an ext4 image built by mkfs.ext4 -d
// match the tree's Entries, plus the xattr values it reads from files.
type fixups struct {
	Script []byte
	// Blobs[i] is the value that "ea_set -f <blobDir>/<i>" reads.
	Blobs [][]byte
	// Commands counts the script's commands.
	Commands int
}

// typeBits are the S_IFMT bits of each entry kind, for "sif ... mode".
var typeBits = map[overlay.Kind]uint32{
	overlay.KindFile:     0o100000,
	overlay.KindDir:      0o040000,
	overlay.KindSymlink:  0o120000,
	overlay.KindCharDev:  0o020000,
	overlay.KindBlockDev: 0o060000,
	overlay.KindFifo:     0o010000,
}

// dfsQuote quotes s as one debugfs (libss) argument: inside double quotes,
// a doubled quote is a literal quote. Newlines and carriage returns end a
// script line and cannot be expressed.
func dfsQuote(s string) (string, error) {
	if strings.ContainsAny(s, "\n\r\x00") {
		return "", fmt.Errorf("%q cannot be expressed in a debugfs script (newline, carriage return or NUL)", s)
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`, nil
}

type scriptWriter struct {
	buf      bytes.Buffer
	blobs    [][]byte
	blobDir  string
	commands int
	err      error
}

// cmd appends one command; args are quoted, opts are written as they are.
func (w *scriptWriter) cmd(name string, quoted []string, raw ...string) {
	if w.err != nil {
		return
	}
	var line strings.Builder
	line.WriteString(name)
	for _, q := range quoted {
		s, err := dfsQuote(q)
		if err != nil {
			w.err = err
			return
		}
		line.WriteByte(' ')
		line.WriteString(s)
	}
	for _, r := range raw {
		line.WriteByte(' ')
		line.WriteString(r)
	}
	if line.Len() > maxScriptLine {
		w.err = fmt.Errorf("debugfs command for %q is longer than %d bytes", quoted, maxScriptLine)
		return
	}
	w.buf.WriteString(line.String())
	w.buf.WriteByte('\n')
	w.commands++
}

func (w *scriptWriter) sif(p, field, value string) {
	w.cmd("set_inode_field", []string{p}, field, value)
}

func (w *scriptWriter) eaSet(p, name string, value []byte) {
	file := path.Join(w.blobDir, strconv.Itoa(len(w.blobs)))
	w.blobs = append(w.blobs, value)
	w.cmd("ea_set -f", []string{file, p, name})
}

// planFixups compares every entry with what is staged for it and returns
// the debugfs commands that make the image right: set_inode_field for
// owner, group, mode (with setuid/setgid/sticky bits) and times, mknod for
// device nodes and fifos, ea_set/ea_rm for xattrs. Every inode gets atime,
// mtime and ctime = epoch (crtime comes from E2FSPROGS_FAKE_TIME), so the
// image does not depend on when the tree was staged. blobDir is where the
// caller writes Blobs.
func planFixups(entries []*overlay.Entry, st map[string]staged, epoch int64, blobDir string) (*fixups, error) {
	w := &scriptWriter{blobDir: blobDir}
	sorted := append([]*overlay.Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	known := make(map[string]bool, len(sorted))
	cwd := "/"
	at := "@" + strconv.FormatInt(epoch, 10)
	for _, e := range sorted {
		known[e.Path] = true
		p := "/" + e.Path
		s, isStaged := st[e.Path]
		switch e.Kind {
		case overlay.KindHardlink:
			// The inode is the link target's; its entry sets the metadata.
			if !isStaged || s.Kind != overlay.KindFile {
				return nil, fmt.Errorf("hardlink %s is not staged as a regular file", p)
			}
			continue
		case overlay.KindFile, overlay.KindDir, overlay.KindSymlink:
			if !isStaged {
				return nil, fmt.Errorf("%s %s is missing from the staging dir", e.Kind, p)
			}
			if s.Kind != e.Kind {
				return nil, fmt.Errorf("%s is a %s in the tree but a %s in the staging dir", p, e.Kind, s.Kind)
			}
			root := e.Path == ""
			if e.Kind != overlay.KindSymlink && (root || s.Perm != e.Mode&0o7777) {
				w.sif(p, "mode", fmt.Sprintf("0%o", typeBits[e.Kind]|e.Mode&0o7777))
			}
			if root || s.UID != e.UID {
				w.sif(p, "uid", strconv.Itoa(e.UID))
			}
			if root || s.GID != e.GID {
				w.sif(p, "gid", strconv.Itoa(e.GID))
			}
			for _, t := range []struct {
				field string
				have  int64
			}{{"atime", s.Atime}, {"mtime", s.Mtime}, {"ctime", s.Ctime}} {
				if t.have != epoch {
					w.sif(p, t.field, at)
				}
			}
			xattrFixups(w, p, s.Xattrs, e.Xattrs)
		case overlay.KindCharDev, overlay.KindBlockDev, overlay.KindFifo:
			if isStaged {
				return nil, fmt.Errorf("%s is a %s in the tree but a %s is staged at its path", p, e.Kind, s.Kind)
			}
			if e.Path == "" {
				return nil, fmt.Errorf("the tree root cannot be a %s", e.Kind)
			}
			if dir := path.Dir("/" + e.Path); dir != cwd {
				w.cmd("cd", []string{dir})
				cwd = dir
			}
			mknod(w, e, path.Base(e.Path))
			w.sif(p, "mode", fmt.Sprintf("0%o", typeBits[e.Kind]|e.Mode&0o7777))
			w.sif(p, "uid", strconv.Itoa(e.UID))
			w.sif(p, "gid", strconv.Itoa(e.GID))
			xattrFixups(w, p, nil, e.Xattrs)
		default:
			return nil, fmt.Errorf("%s has unknown entry kind %s", p, e.Kind)
		}
		if w.err != nil {
			return nil, fmt.Errorf("tree path %s: %w", p, w.err)
		}
	}
	if cwd != "/" {
		w.cmd("cd", []string{"/"})
	}
	if w.err != nil {
		return nil, w.err
	}
	var extra []string
	for p := range st {
		if !known[p] {
			extra = append(extra, "/"+p)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], fmt.Sprintf("and %d more", len(extra)-5))
		}
		return nil, fmt.Errorf("the staging dir holds paths the tree has no entry for: %s", strings.Join(extra, ", "))
	}
	return &fixups{Script: w.buf.Bytes(), Blobs: w.blobs, Commands: w.commands}, nil
}

// xattrFixups sets the xattrs that differ from what is staged and removes
// staged ones the entry does not declare, in name order.
func xattrFixups(w *scriptWriter, p string, have, want map[string][]byte) {
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if v, ok := have[n]; !ok || !bytes.Equal(v, want[n]) {
			w.eaSet(p, n, want[n])
		}
	}
	names = names[:0]
	for n := range have {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		w.cmd("ea_rm", []string{p, n})
	}
}

// newEncodeDev is the kernel's new_encode_dev, the device number ext4 keeps
// in i_block[1] when major or minor exceeds 255.
func newEncodeDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}
