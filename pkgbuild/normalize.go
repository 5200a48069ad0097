package pkgbuild

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"imagebuilder/pkgbuild/archive"
)

// outputEntry is one path of a build's output directory.
type outputEntry struct {
	rel  string
	path string
	e    archive.Entry
}

// scanOutput lists outDir as archive entries in archive order: permission bits
// kept, uid/gid and times dropped, a file with several links inside outDir written
// once and linked after. Symlinks must stay inside the package or point under
// prefix; other file types are refused.
func scanOutput(outDir, prefix string) ([]outputEntry, error) {
	var ents []outputEntry
	err := filepath.WalkDir(outDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == outDir {
			return nil
		}
		rel, err := filepath.Rel(outDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := archive.Entry{Name: rel, Mode: fi.Mode().Perm()}
		switch t := fi.Mode().Type(); {
		case t.IsDir():
			e.Type = archive.TypeDir
		case t.IsRegular():
			e.Type = archive.TypeFile
			e.Size = fi.Size()
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := archive.CheckSymlink(rel, target, "", prefix); err != nil {
				return err
			}
			e.Type, e.Mode, e.Linkname = archive.TypeSymlink, 0o777, target
		default:
			return fmt.Errorf("%s is a %v; packages may hold only files, directories and symlinks", rel, t)
		}
		if err := archive.CheckName(rel); err != nil {
			return err
		}
		ents = append(ents, outputEntry{rel: rel, path: p, e: e})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning build output: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return archive.Less(ents[i].rel, ents[j].rel) })
	type inode struct{ dev, ino uint64 }
	first := map[inode]string{}
	for i := range ents {
		if ents[i].e.Type != archive.TypeFile {
			continue
		}
		fi, err := os.Lstat(ents[i].path)
		if err != nil {
			return nil, fmt.Errorf("scanning build output: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Nlink < 2 {
			continue
		}
		key := inode{uint64(st.Dev), uint64(st.Ino)}
		if name, ok := first[key]; ok {
			ents[i].e = archive.Entry{Name: ents[i].rel, Type: archive.TypeHardlink, Mode: ents[i].e.Mode, Linkname: name}
			continue
		}
		first[key] = ents[i].rel
	}
	return ents, nil
}

// writePackageTarball normalises outDir into the deterministic tarball dest and
// returns its sha256.
func writePackageTarball(outDir, dest, prefix string, epoch int64) (string, error) {
	ents, err := scanOutput(outDir, prefix)
	if err != nil {
		return "", err
	}
	var sum string
	err = writeAtomic(dest, 0o644, func(w io.Writer) error {
		hw := newSHA256Writer(w)
		// Framed, so that the bundle copies big files' compressed frames
		// instead of compressing them again.
		zw, err := archive.NewParallelCompressorDefault(hw)
		if err != nil {
			return err
		}
		tw := archive.NewFramedWriter(zw, epoch)
		for _, oe := range ents {
			if err := addOutput(tw, oe); err != nil {
				zw.Close()
				return err
			}
		}
		if err := tw.Close(); err != nil {
			zw.Close()
			return err
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("finishing zstd stream: %w", err)
		}
		sum = hw.sum()
		return nil
	})
	return sum, err
}

func addOutput(tw *archive.Writer, oe outputEntry) error {
	if oe.e.Type != archive.TypeFile {
		return tw.Add(oe.e, nil)
	}
	f, err := os.Open(oe.path)
	if err != nil {
		return err
	}
	defer f.Close()
	return tw.Add(oe.e, f)
}
