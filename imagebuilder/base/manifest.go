package base

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Manifest describes a tree read from a tar stream: one line per path
// ("etc/passwd file 0644 0:0 sha256:… xattrs=…"), sorted. A later entry for a
// path replaces an earlier one, as in overlay.Apply; a hardlink is listed as
// the file it links to, so two streams of the same tree give the same
// manifest whatever order or link direction they chose. It is how the tests
// prove that every kind of base yields the same root.
func Manifest(r io.Reader) ([]string, error) {
	tr := tar.NewReader(r)
	lines := map[string]string{}
	files := map[string]string{} // path → line tail of a regular file, for hardlinks
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar stream: %w", err)
		}
		p := manifestPath(hdr.Name)
		meta := fmt.Sprintf("%04o %d:%d", hdr.Mode&0o7777, hdr.Uid, hdr.Gid)
		var xattrs []string
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xattrs = append(xattrs, name+"="+hex.EncodeToString([]byte(v)))
			}
		}
		sort.Strings(xattrs)
		if len(xattrs) > 0 {
			meta += " xattrs=" + strings.Join(xattrs, ",")
		}
		var line string
		switch hdr.Typeflag {
		case tar.TypeDir:
			line = "dir " + meta
		case tar.TypeReg:
			h := sha256.New()
			n, err := io.Copy(h, tr)
			if err != nil {
				return nil, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			line = fmt.Sprintf("file %s size=%d sha256:%s", meta, n, hex.EncodeToString(h.Sum(nil)))
			files[p] = line
		case tar.TypeLink:
			target, ok := files[manifestPath(hdr.Linkname)]
			if !ok {
				return nil, fmt.Errorf("tar entry %q: hardlink to %q, which is not an earlier regular file", hdr.Name, hdr.Linkname)
			}
			line = target
			files[p] = line
		case tar.TypeSymlink:
			line = fmt.Sprintf("symlink %s -> %s", meta, hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			line = fmt.Sprintf("dev%c %s %d,%d", hdr.Typeflag, meta, hdr.Devmajor, hdr.Devminor)
		case tar.TypeFifo:
			line = "fifo " + meta
		default:
			line = fmt.Sprintf("type%q %s", hdr.Typeflag, meta)
		}
		if old, ok := lines[p]; ok && strings.HasPrefix(old, "dir ") && !strings.HasPrefix(line, "dir ") {
			for k := range lines { // a non-directory replaces a directory and its contents
				if strings.HasPrefix(k, p+"/") {
					delete(lines, k)
				}
			}
		}
		lines[p] = line
	}
	out := make([]string, 0, len(lines))
	for p, l := range lines {
		out = append(out, "/"+p+" "+l)
	}
	sort.Strings(out)
	return out, nil
}

func manifestPath(name string) string {
	p := cleanName(name)
	if p == "." {
		return ""
	}
	return strings.TrimPrefix(p, "/")
}
