package output

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/atomicfile"
)

// WriteTar writes the tree as a deterministic tar stream: entries in path
// order (parents first), names relative ("etc/passwd", the root is "./"),
// owners, modes, device numbers and xattrs from the tree's entries, every
// time set to epoch, no user or group names.
func WriteTar(ctx context.Context, w io.Writer, tree *overlay.Tree, epoch int64) error {
	tw := tar.NewWriter(w)
	mtime := time.Unix(epoch, 0).UTC()
	buf := make([]byte, 1<<20)
	// Hardlinked files: the first of a group in path order carries the
	// contents, the others link to it, so extraction never meets a link
	// before its target.
	first := map[string]string{}
	for _, e := range tree.Sorted() {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tarHeader(e, mtime)
		if err != nil {
			return err
		}
		if e.Kind == overlay.KindFile || e.Kind == overlay.KindHardlink {
			group, err := linkGroup(tree, e)
			if err != nil {
				return err
			}
			if name, ok := first[group]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size, hdr.PAXRecords = tar.TypeLink, name, 0, nil
			} else {
				first[group] = hdr.Name
				target := tree.Entries[group]
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeReg, "", target.Size
				hdr.Mode, hdr.Uid, hdr.Gid = int64(target.Mode&0o7777), target.UID, target.GID
				hdr.PAXRecords = paxXattrs(target.Xattrs)
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar /%s: %w", e.Path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := copyContent(tw, filepath.Join(tree.Root, filepath.FromSlash(e.Path)), hdr.Size, buf); err != nil {
			return fmt.Errorf("tar /%s: %w", e.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	return nil
}

// linkGroup is the regular file entry e is (a file) or links to (a
// hardlink, following chains).
func linkGroup(tree *overlay.Tree, e *overlay.Entry) (string, error) {
	for range 64 {
		if e.Kind == overlay.KindFile {
			return e.Path, nil
		}
		t, ok := tree.Entries[e.Link]
		if !ok {
			return "", fmt.Errorf("tar /%s: hardlink to /%s, which is not in the tree", e.Path, e.Link)
		}
		e = t
	}
	return "", fmt.Errorf("tar /%s: hardlink chain too long", e.Path)
}

// tarHeader maps one tree entry to its header.
func tarHeader(e *overlay.Entry, mtime time.Time) (*tar.Header, error) {
	name := e.Path
	if name == "" {
		name = "."
	}
	h := &tar.Header{
		Name: name, Mode: int64(e.Mode & 0o7777), Uid: e.UID, Gid: e.GID,
		ModTime: mtime, Format: tar.FormatPAX,
	}
	switch e.Kind {
	case overlay.KindDir:
		h.Typeflag, h.Name = tar.TypeDir, strings.TrimSuffix(name, "/")+"/"
		if e.Path == "" {
			h.Name = "./"
		}
	case overlay.KindFile:
		h.Typeflag, h.Size = tar.TypeReg, e.Size
	case overlay.KindSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
	case overlay.KindHardlink:
		h.Typeflag, h.Linkname = tar.TypeLink, e.Link
	case overlay.KindCharDev:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, int64(e.DevMajor), int64(e.DevMinor)
	case overlay.KindBlockDev:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeBlock, int64(e.DevMajor), int64(e.DevMinor)
	case overlay.KindFifo:
		h.Typeflag = tar.TypeFifo
	default:
		return nil, fmt.Errorf("tar /%s: entry of kind %s cannot be archived", e.Path, e.Kind)
	}
	h.PAXRecords = paxXattrs(e.Xattrs)
	return h, nil
}

func paxXattrs(x map[string][]byte) map[string]string {
	if len(x) == 0 {
		return nil
	}
	r := map[string]string{}
	for k, v := range x {
		r["SCHILY.xattr."+k] = string(v)
	}
	return r
}

// copyContent copies exactly size bytes of the staged file p; a file whose
// size changed since it was staged is an error, not a corrupt archive.
func copyContent(w io.Writer, p string, size int64, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(struct{ io.Reader }{f}, size), buf)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("staged file is %d bytes, the tree says %d", n, size)
	}
	return nil
}

// WriteTarFile writes the tree's tar to out atomically.
func WriteTarFile(ctx context.Context, out string, tree *overlay.Tree, epoch int64) error {
	return atomicfile.Write(out, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := WriteTar(ctx, bw, tree, epoch); err != nil {
			return err
		}
		return bw.Flush()
	})
}
