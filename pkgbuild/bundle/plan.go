package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"sort"

	"imagebuilder/pkgbuild/archive"
)

// item is one entry of the bundle being written: generated data (src < 0) or the
// next entry of source src.
type item struct {
	e    archive.Entry
	data []byte
	src  int
	// sha and size describe the content of a file, or of the file a hardlink
	// links to.
	sha  string
	size int64
	// off is where a file's content starts in its source's decompressed
	// stream; frames, when not empty, is the run of the source's frames that
	// holds exactly that content (padded to the tar block).
	off    int64
	frames [2]int
}

// source is a tar.zst file (a package tarball, or the base bundle of
// Extend) whose entries are copied into the bundle: the second pass reads it
// with a cursor, by the offsets and frame layout the first pass recorded, and
// checks the file's digest (sha, as the first pass saw it) instead of every
// entry's content.
type source struct {
	label  string
	file   string
	layout *layout
	sha    string
	// data, when set, is the whole tarball as the first pass read it: the
	// second pass does not read the file again.
	data []byte
}

func genFile(name string, mode fs.FileMode, data []byte) item {
	return item{e: archive.Entry{Name: name, Type: archive.TypeFile, Mode: mode, Size: int64(len(data))}, data: data, src: -1, sha: sha256Hex(data), size: int64(len(data))}
}

func genDir(name string) item {
	return item{e: archive.Entry{Name: name, Type: archive.TypeDir, Mode: 0o755}, src: -1}
}

func genSymlink(name, target string) item {
	return item{e: archive.Entry{Name: name, Type: archive.TypeSymlink, Mode: 0o777, Linkname: target}, src: -1}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sortItems(items []item) error {
	sort.Slice(items, func(i, j int) bool { return archive.Less(items[i].e.Name, items[j].e.Name) })
	for i := 1; i < len(items); i++ {
		if items[i].e.Name == items[i-1].e.Name {
			return fmt.Errorf("two bundle entries at %q", items[i].e.Name)
		}
	}
	return nil
}

func manifestEntries(items []item) []Entry {
	out := make([]Entry, 0, len(items))
	for _, it := range items {
		e := Entry{Path: it.e.Name, Type: it.e.Type.String(), Mode: Mode(it.e.Mode), Target: it.e.Linkname}
		if it.e.Type == archive.TypeFile || it.e.Type == archive.TypeHardlink {
			e.SHA256 = it.sha
			e.Size = it.size
		}
		out = append(out, e)
	}
	return out
}

// writePlan writes the sorted items as a tar.zst to w, pulling source entries in
// order and checking each against what the first pass saw.
func writePlan(w io.Writer, items []item, sources []source, mtime int64) (err error) {
	zw, err := archive.NewParallelCompressor(w)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			zw.Abort()
		}
	}()
	tw := archive.NewFramedWriter(zw, mtime)
	cur, done := -1, map[int]bool{}
	var cs *cursor
	defer func() {
		if cs != nil {
			cs.Close()
		}
	}()
	finish := func() error {
		if cs == nil {
			return nil
		}
		if err := cs.finish(sources[cur].sha); err != nil {
			return err
		}
		done[cur] = true
		err := cs.Close()
		cs, cur = nil, -1
		return err
	}
	for _, it := range items {
		if it.src < 0 {
			if err := tw.Add(it.e, bytes.NewReader(it.data)); err != nil {
				return fmt.Errorf("writing bundle: %w", err)
			}
			continue
		}
		if it.src != cur {
			if err := finish(); err != nil {
				return err
			}
			if done[it.src] {
				return fmt.Errorf("internal error: %s read twice", sources[it.src].label)
			}
			if cs, err = openCursor(sources[it.src]); err != nil {
				return err
			}
			cur = it.src
		}
		switch {
		case it.copies():
			err = tw.AddFrames(it.e, func(fw archive.FrameWriter) error { return cs.copyFrames(it, fw) })
		case it.e.Type == archive.TypeFile:
			err = tw.Add(it.e, cs.content(it.off, it.e.Size))
		default:
			err = tw.Add(it.e, nil)
		}
		if err != nil {
			return fmt.Errorf("writing bundle: %w", err)
		}
	}
	if err := finish(); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finishing zstd stream: %w", err)
	}
	return nil
}
