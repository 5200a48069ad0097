package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
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

// source is a tar.zst stream whose entries are copied into the bundle: a
// package tarball read through its layout (file, layout, sha), or a stream read
// with open.
type source struct {
	label string
	open  func() (*archive.Reader, io.Closer, error)
	// rename maps a source entry name to its bundle path.
	rename func(string) string
	// drop lists bundle paths of source entries that are left out.
	drop map[string]bool
	// file, layout and sha (the file's sha256 as the first pass saw it) are
	// set for a package tarball: the second pass reads it with a cursor and
	// checks the file's digest instead of every entry's content.
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
	defer zw.Close()
	tw := archive.NewFramedWriter(zw, mtime)
	cur, done := -1, map[int]bool{}
	var rd *archive.Reader
	var cs *cursor
	var closer io.Closer
	defer func() {
		if closer != nil {
			closer.Close()
		}
	}()
	finish := func() error {
		if cur < 0 {
			return nil
		}
		if cs != nil {
			if err := cs.finish(sources[cur].sha); err != nil {
				return err
			}
			done[cur] = true
			err := cs.Close()
			cs, closer, cur = nil, nil, -1
			return err
		}
		for {
			e, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", sources[cur].label, err)
			}
			if name := sources[cur].rename(e.Name); !sources[cur].drop[name] {
				return fmt.Errorf("%s: entry %q changed since it was first read", sources[cur].label, e.Name)
			}
		}
		done[cur] = true
		err := closer.Close()
		closer, cur = nil, -1
		return err
	}
	for _, it := range items {
		var content io.Reader
		var h hash.Hash
		if it.src < 0 {
			content = bytes.NewReader(it.data)
		} else {
			if it.src != cur {
				if err := finish(); err != nil {
					return err
				}
				if done[it.src] {
					return fmt.Errorf("internal error: %s read twice", sources[it.src].label)
				}
				cur = it.src
				if src := sources[cur]; src.layout != nil {
					if cs, err = openCursor(src); err != nil {
						return err
					}
					closer = cs
				} else if rd, closer, err = src.open(); err != nil {
					return err
				}
			}
			if cs != nil {
				if it.copies() {
					if err := tw.AddFrames(it.e, func(fw archive.FrameWriter) error { return cs.copyFrames(it, fw) }); err != nil {
						return fmt.Errorf("writing bundle: %w", err)
					}
					continue
				}
				content = cs.content(it.off, it.e.Size)
			} else {
				if err := nextFrom(rd, sources[cur], it); err != nil {
					return err
				}
				h = sha256.New()
				content = io.TeeReader(rd, h)
			}
		}
		if err := tw.Add(it.e, content); err != nil {
			return fmt.Errorf("writing bundle: %w", err)
		}
		if h != nil && it.e.Type == archive.TypeFile {
			if got := hex.EncodeToString(h.Sum(nil)); got != it.sha {
				return fmt.Errorf("%s: content of %q changed since it was first read", sources[cur].label, it.e.Name)
			}
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

// nextFrom advances rd to the entry that becomes it, skipping dropped entries.
func nextFrom(rd *archive.Reader, src source, it item) error {
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return fmt.Errorf("%s: ended before %q", src.label, it.e.Name)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", src.label, err)
		}
		name := src.rename(e.Name)
		if src.drop[name] {
			continue
		}
		if name != it.e.Name || e.Type != it.e.Type || e.Size != it.e.Size {
			return fmt.Errorf("%s: entry %q changed since it was first read", src.label, e.Name)
		}
		return nil
	}
}
