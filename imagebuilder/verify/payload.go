package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/disk"
	"imagebuilder/pkgbuild/atomicfile"
	"imagebuilder/pkgbuild/bundle"
)

// found is what an image holds at one payload path.
type found struct {
	Type   string // file, dir, symlink
	Size   int64
	SHA256 string
	Target string
}

// maxListed bounds the differences a report spells out.
const maxListed = 20

// comparePayload checks the files found under the prefix against the
// bundle manifest found with them (whose config hash must be the build's).
func comparePayload(r *Report, files map[string]found, manifestJSON []byte, m *build.Result) {
	if manifestJSON == nil {
		r.add("cluster payload", false, "no %s/manifest.json in the image", m.Prefix)
		return
	}
	var bm bundle.Manifest
	if err := json.Unmarshal(manifestJSON, &bm); err != nil {
		r.add("cluster payload", false, "%s/manifest.json: %v", m.Prefix, err)
		return
	}
	var diffs []string
	if bm.ConfigHash != m.ConfigHash {
		diffs = append(diffs, fmt.Sprintf("config hash %s, built %s", bm.ConfigHash, m.ConfigHash))
	}
	seen := map[string]bool{"manifest.json": true}
	for _, e := range bm.Entries {
		p := strings.TrimSuffix(e.Path, "/")
		seen[p] = true
		f, ok := files[p]
		switch {
		case !ok:
			diffs = append(diffs, p+": missing")
		case e.Type == "dir":
			if f.Type != "dir" {
				diffs = append(diffs, fmt.Sprintf("%s: %s, built a directory", p, f.Type))
			}
		case e.Type == "symlink":
			if f.Type != "symlink" || f.Target != e.Target {
				diffs = append(diffs, fmt.Sprintf("%s: %s %q, built a symlink to %q", p, f.Type, f.Target, e.Target))
			}
		default: // file, hardlink
			if f.Type != "file" || f.Size != e.Size || f.SHA256 != e.SHA256 {
				diffs = append(diffs, fmt.Sprintf("%s: content changed (%d bytes, sha256 %.12s; built %d bytes, %.12s)", p, f.Size, f.SHA256, e.Size, e.SHA256))
			}
		}
	}
	var extra []string
	for p := range files {
		if !seen[p] && p != "" {
			extra = append(extra, p+": not in the bundle")
		}
	}
	sort.Strings(extra)
	diffs = append(diffs, extra...)
	if len(diffs) == 0 {
		r.add("cluster payload", true, "%d paths under %s match the bundle manifest", len(bm.Entries), m.Prefix)
		return
	}
	n := len(diffs)
	if n > maxListed {
		diffs = append(diffs[:maxListed], fmt.Sprintf("… %d more", n-maxListed))
	}
	r.add("cluster payload", false, "%d differences under %s: %s", n, m.Prefix, strings.Join(diffs, "; "))
}

// checkTarPayload reads the payload out of a rootfs tar.
func checkTarPayload(r *Report, p string, m *build.Result) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	prefix := strings.Trim(m.Prefix, "/") + "/"
	files := map[string]found{}
	byName := map[string]found{}
	var manifestJSON []byte
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.add("tar", false, "unreadable: %v", err)
			return nil
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		rel, ok := strings.CutPrefix(name+"/", prefix)
		if !ok {
			continue
		}
		rel = strings.TrimSuffix(rel, "/")
		var fd found
		switch h.Typeflag {
		case tar.TypeDir:
			fd.Type = "dir"
		case tar.TypeSymlink:
			fd.Type, fd.Target = "symlink", h.Linkname
		case tar.TypeLink:
			fd = byName[strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")]
		case tar.TypeReg:
			h256 := sha256.New()
			var buf bytes.Buffer
			w := io.Writer(h256)
			if rel == "manifest.json" {
				w = io.MultiWriter(h256, &buf)
			}
			n, err := io.Copy(w, tr)
			if err != nil {
				return fmt.Errorf("reading %s from %s: %w", name, p, err)
			}
			fd = found{Type: "file", Size: n, SHA256: hex.EncodeToString(h256.Sum(nil))}
			if rel == "manifest.json" {
				manifestJSON = buf.Bytes()
			}
		default:
			fd.Type = "special"
		}
		byName[name] = fd
		files[rel] = fd
	}
	comparePayload(r, files, manifestJSON, m)
	return nil
}

// checkDiskPayload copies the prefix out of the root filesystem with
// debugfs rdump (nothing is mounted) and compares it.
func checkDiskPayload(ctx context.Context, r *Report, raw string, rootStart int64, m *build.Result, o Options) error {
	tmp, err := os.MkdirTemp(o.TempDir, "imagebuilder-verify-root-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dev := fmt.Sprintf("%s?offset=%d", raw, rootStart)
	cmd := fmt.Sprintf("rdump %q %q", m.Prefix, tmp)
	if _, _, err := o.Tools.Runner.Run(ctx, disk.Cmd{Tool: o.Tools.Debugfs, Args: []string{"-R", cmd, dev}}); err != nil {
		r.add("cluster payload", false, "cannot read %s from the root filesystem: %v", m.Prefix, err)
		return nil
	}
	top := filepath.Join(tmp, path.Base(m.Prefix))
	files := map[string]found{}
	var manifestJSON []byte
	err = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(top, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		switch {
		case d.IsDir():
			files[rel] = found{Type: "dir"}
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files[rel] = found{Type: "symlink", Target: t}
		case d.Type().IsRegular():
			sum, err := atomicfile.SHA256(p)
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files[rel] = found{Type: "file", Size: fi.Size(), SHA256: sum}
			if rel == "manifest.json" {
				if manifestJSON, err = os.ReadFile(p); err != nil {
					return err
				}
			}
		default:
			files[rel] = found{Type: "special"}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the dumped payload: %w", err)
	}
	comparePayload(r, files, manifestJSON, m)
	return nil
}
