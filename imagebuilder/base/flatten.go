package base

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"imagebuilder/overlay"
)

// Layer is one layer of an image: an uncompressed tar stream that can be
// opened more than once.
type Layer interface {
	Open() (io.ReadCloser, error)
	// String names the layer in errors (its diff id).
	String() string
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Flatten merges layers (bottom first) into one tar stream: the files an
// overlay mount of them would show. Whiteouts (".wh.NAME") delete NAME from
// the layers below, opaque markers (".wh..wh..opq") hide a directory's
// lower contents, a later entry replaces an earlier one, and a non-directory
// hides whatever lower layers had below it. Entries that would escape the
// root (".." components, absolute names, links climbing out) are refused
// naming the layer and the entry. Nothing is written to disk: the first pass
// reads headers to decide which entries survive, the second streams them
// bottom-up, so parents and hardlink targets come before what needs them.
func Flatten(ctx context.Context, layers []Layer) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		keep, err := survivors(ctx, layers)
		if err == nil {
			err = emit(ctx, layers, keep, pw)
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// LayerError names the layer holding a refused entry.
type LayerError struct {
	Index, Count int
	Layer        string
	Err          error
}

func (e *LayerError) Error() string {
	return fmt.Sprintf("layer %d of %d (%s): %v", e.Index+1, e.Count, e.Layer, e.Err)
}

func (e *LayerError) Unwrap() error { return e.Err }

type entry struct {
	name string
	dir  bool
}

// survivors returns, per layer, which entry ordinals reach the result.
func survivors(ctx context.Context, layers []Layer) ([]map[int]bool, error) {
	keep := make([]map[int]bool, len(layers))
	seen := map[string]bool{}     // names taken by upper layers
	nondir := map[string]bool{}   // non-directories of upper layers
	whiteout := map[string]bool{} // deleted by upper layers (and below)
	opaque := map[string]bool{}   // directories whose lower contents are hidden
	for i := len(layers) - 1; i >= 0; i-- {
		fail := func(err error) error {
			return &LayerError{Index: i, Count: len(layers), Layer: layers[i].String(), Err: err}
		}
		entries, err := readEntries(ctx, layers[i])
		if err != nil {
			return nil, fail(err)
		}
		keep[i] = map[int]bool{}
		var newWhiteouts, newOpaque []string
		layerSeen := map[string]bool{}
		for n := len(entries) - 1; n >= 0; n-- { // later entries of a layer win
			e := entries[n]
			base := path.Base(e.name)
			if base == opaqueMarker {
				newOpaque = append(newOpaque, path.Dir(e.name))
				continue
			}
			if strings.HasPrefix(base, whiteoutPrefix) {
				newWhiteouts = append(newWhiteouts, path.Join(path.Dir(e.name), strings.TrimPrefix(base, whiteoutPrefix)))
				continue
			}
			if layerSeen[e.name] || seen[e.name] || hidden(e.name, whiteout, opaque, nondir) {
				continue
			}
			layerSeen[e.name] = true
			keep[i][n] = true
		}
		for name := range layerSeen {
			seen[name] = true
		}
		for n, e := range entries {
			if keep[i][n] && !e.dir {
				nondir[e.name] = true
			}
		}
		for _, w := range newWhiteouts {
			whiteout[w] = true
		}
		for _, o := range newOpaque {
			opaque[o] = true
		}
	}
	return keep, nil
}

// hidden reports whether an upper layer deleted name, or hid it with an
// opaque directory or a non-directory above it.
func hidden(name string, whiteout, opaque, nondir map[string]bool) bool {
	if whiteout[name] {
		return true
	}
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		if whiteout[d] || opaque[d] || nondir[d] {
			return true
		}
	}
	return opaque["."] && name != "."
}

// readEntries lists a layer's entries with their cleaned names, checking
// each one.
func readEntries(ctx context.Context, l Layer) ([]entry, error) {
	r, err := l.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	tr := tar.NewReader(r)
	var out []entry
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading layer: %w", err)
		}
		name, err := CheckEntry(hdr)
		if err != nil {
			return nil, err
		}
		out = append(out, entry{name: name, dir: hdr.Typeflag == tar.TypeDir})
	}
}

// emit streams the surviving entries, bottom layer first.
func emit(ctx context.Context, layers []Layer, keep []map[int]bool, w io.Writer) error {
	tw := tar.NewWriter(w)
	for i, l := range layers {
		if err := emitLayer(ctx, l, keep[i], tw); err != nil {
			return &LayerError{Index: i, Count: len(layers), Layer: l.String(), Err: err}
		}
	}
	return tw.Close()
}

func emitLayer(ctx context.Context, l Layer, keep map[int]bool, tw *tar.Writer) error {
	r, err := l.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		if !keep[n] {
			continue
		}
		name, err := CheckEntry(hdr) // the layer must read the same twice
		if err != nil {
			return err
		}
		hdr.Name = name
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = cleanName(hdr.Linkname)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		}
	}
}

// cleanName drops "./" and trailing slashes: "./etc/" → "etc", "./" → ".".
func cleanName(n string) string {
	c := path.Clean(n)
	if c == "/" {
		return "."
	}
	return c
}

// CheckEntry validates an entry of a layer or base and returns its clean
// name. It refuses what overlay.Apply refuses about names and links, here
// already, so a hostile layer is named even if a whiteout would hide it.
func CheckEntry(hdr *tar.Header) (string, error) {
	refuse := func(reason string) (string, error) {
		return "", &overlay.EntryError{Entry: hdr.Name, Reason: reason}
	}
	switch {
	case hdr.Name == "":
		return refuse("empty name")
	case strings.HasPrefix(hdr.Name, "/"):
		return refuse("absolute path refused")
	case strings.ContainsRune(hdr.Name, 0):
		return refuse("NUL byte in name")
	}
	for _, part := range strings.Split(hdr.Name, "/") {
		if part == ".." {
			return refuse(`".." component refused`)
		}
	}
	name := cleanName(hdr.Name)
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return refuse("empty symlink target")
		}
		if !staysInside(path.Dir(name), hdr.Linkname) {
			return refuse(fmt.Sprintf("symlink target %q points outside the root", hdr.Linkname))
		}
	case tar.TypeLink:
		if hdr.Linkname == "" || strings.HasPrefix(hdr.Linkname, "/") || strings.Contains("/"+hdr.Linkname+"/", "/../") {
			return refuse(fmt.Sprintf("hardlink target %q refused", hdr.Linkname))
		}
	}
	return name, nil
}

// staysInside resolves target lexically from dir (absolute targets from the
// root) and reports whether it stays inside the root.
func staysInside(dir, target string) bool {
	depth := 0
	if !strings.HasPrefix(target, "/") && dir != "." {
		depth = strings.Count(dir, "/") + 1
	}
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			if depth == 0 {
				return false
			}
			depth--
		default:
			depth++
		}
	}
	return true
}
