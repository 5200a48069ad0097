package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
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
}

// source is a tar.zst stream whose entries are copied into the bundle.
type source struct {
	label string
	open  func() (*archive.Reader, io.Closer, error)
	// rename maps a source entry name to its bundle path.
	rename func(string) string
	// drop lists bundle paths of source entries that are left out.
	drop map[string]bool
	// sha, when set, is the sha256 of the whole source file as the first pass
	// saw it: open must then return a *hashedFile closer, and the second pass
	// checks the file's digest instead of every entry's content.
	sha string
}

// hashedFile is an open zstd file whose raw bytes are digested as they are
// decompressed.
type hashedFile struct {
	f   *os.File
	raw io.Reader
	zr  io.ReadCloser
	h   hash.Hash
}

func openHashed(file string) (*hashedFile, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	raw := io.TeeReader(f, h)
	zr, err := archive.NewDecompressor(raw)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &hashedFile{f: f, raw: raw, zr: zr, h: h}, nil
}

// sum reads the rest of the stream and the file and returns the file's sha256.
func (hf *hashedFile) sum() (string, error) {
	if _, err := io.Copy(io.Discard, hf.zr); err != nil {
		return "", err
	}
	if _, err := io.Copy(io.Discard, hf.raw); err != nil {
		return "", err
	}
	return hex.EncodeToString(hf.h.Sum(nil)), nil
}

func (hf *hashedFile) Close() error {
	hf.zr.Close()
	return hf.f.Close()
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
	tw := archive.NewWriter(zw, mtime)
	cur, done := -1, map[int]bool{}
	var rd *archive.Reader
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
		if want := sources[cur].sha; want != "" {
			hf, ok := closer.(*hashedFile)
			if !ok {
				return fmt.Errorf("internal error: %s opened without a digest", sources[cur].label)
			}
			got, err := hf.sum()
			if err != nil {
				return fmt.Errorf("%s: %w", sources[cur].label, err)
			}
			if got != want {
				return fmt.Errorf("%s: changed since it was first read (sha256 %s, was %s)", sources[cur].label, got, want)
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
				if rd, closer, err = sources[cur].open(); err != nil {
					return err
				}
			}
			if err := nextFrom(rd, sources[cur], it); err != nil {
				return err
			}
			content = rd
			if sources[cur].sha == "" {
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
