package disk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"imagebuilder/overlay"

	"imagebuilder/pkgbuild/atomicfile"
)

// layerFormat is the version of a layer folder's layout and of the way the
// layered writer uses it; a change makes every cached layer a miss.
const layerFormat = 1

// Layer files inside a layer folder.
const (
	layerMetaFile   = "layer.json"
	layerImageFile  = "root.ext4"
	layerLinuxFile  = "linux"
	layerInitrdFile = "initrd"
)

// layerInodeSlack is the inodes a layer keeps free beyond 30% of its
// entries for what builds add to it (the bundle, fstab, unit links).
const layerInodeSlack = 4096

// Layer is a base root filesystem made once and reused by every image of
// that base: the ext4 image of the base tree after its distro fixups, its
// kernel and initrd, and the tree's entries. WriteRawLayered copies the
// image into a disk and adds what a build changed (the bundle, fstab, unit
// links) with debugfs, so the base is never staged, formatted or fixed up
// again.
type Layer struct {
	Dir  string
	Meta LayerMeta
}

// LayerMeta is layer.json.
type LayerMeta struct {
	Format int `json:"format"`
	// Key is what the layer was made from (the caller's cache key).
	Key string `json:"key"`
	// Title is the tree's os-release PRETTY_NAME.
	Title string `json:"title"`
	// Kernel names the tree paths of the boot kernel and initrd, whose
	// copies are the folder's linux and initrd.
	Kernel Kernel `json:"kernel"`
	// Bytes and Inodes are the size and inode count of root.ext4.
	Bytes  int64 `json:"bytes"`
	Inodes int64 `json:"inodes"`
	// DataBlocks are the blocks the tree's content takes (for sizing the
	// filesystem of a build on top of the layer).
	DataBlocks int64 `json:"data_blocks"`
	// Digest is the sparse digest of root.ext4 (see sparseDigest).
	Digest string `json:"digest"`
	// Info is the caller's (distribution, release).
	Info map[string]string `json:"info,omitempty"`
	// Entries are every entry of the tree, in path order.
	Entries []*overlay.Entry `json:"entries"`
}

// Image is the path of the layer's ext4 image.
func (l *Layer) Image() string { return filepath.Join(l.Dir, layerImageFile) }

// EntryMap returns the layer's entries by tree path. Every call returns
// fresh *Entry values.
func (l *Layer) EntryMap() map[string]*overlay.Entry {
	m := make(map[string]*overlay.Entry, len(l.Meta.Entries))
	for _, e := range l.Meta.Entries {
		c := *e
		m[e.Path] = &c
	}
	return m
}

// LayerOptions tune BuildLayer.
type LayerOptions struct {
	// Key identifies the layer in a cache (what it is made from and by
	// which program).
	Key string
	// Seed, the content the layer is made from (the base's digest), seeds
	// the layer's filesystem UUID, checksum seed and directory hash seed:
	// every program that makes the layer of the same base makes the same
	// bytes. Default: Key.
	Seed string
	// SourceDateEpoch is every time in the image; 0 is DefaultEpoch.
	SourceDateEpoch int64
	// Info is stored in layer.json for the caller.
	Info  map[string]string
	Tools Tools
}

// BuildLayer makes the layer of tree in folder dir, which appears complete
// or not at all (a folder made beside it, then renamed). When dir already
// holds a layer of the same key (another build was faster), that one is
// returned.
func BuildLayer(ctx context.Context, log *slog.Logger, tree *overlay.Tree, dir string, o LayerOptions) (*Layer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Key == "" {
		return nil, errors.New("layer: Key is required")
	}
	if o.SourceDateEpoch == 0 {
		o.SourceDateEpoch = DefaultEpoch
	}
	o.Tools = o.Tools.withDefaults()
	k, err := FindKernel(tree)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("layer folder: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("layer folder: %w", err)
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	st, err := scanStaging(tree.Root)
	if err != nil {
		return nil, err
	}
	blocks := stagedBlocks(st)
	plan := planBlocks(blocks, int64(len(tree.Entries)))
	// The tightest fit plus room for mkfs's own allocation; builds grow it.
	plan.Bytes = roundUp(plan.MinBytes+plan.MinBytes/50+16*mib, mib)
	plan.Inodes = int64(len(tree.Entries))*13/10 + layerInodeSlack
	if o.Seed == "" {
		o.Seed = o.Key
	}
	uuids := PlanUUIDs("layer\x00" + o.Seed)
	work := filepath.Join(tmp, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, err
	}
	b := &ext4Build{Tools: o.Tools, Tree: tree, Staged: st, Plan: plan, UUIDs: uuids, Epoch: o.SourceDateEpoch, WorkDir: work}
	var t Timings
	img, _, err := b.build(ctx, &t)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	if err := os.Rename(img, filepath.Join(tmp, layerImageFile)); err != nil {
		return nil, err
	}
	digest, err := sparseDigest(ctx, filepath.Join(tmp, layerImageFile))
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	for _, c := range []struct{ src, dst string }{{k.Linux, layerLinuxFile}, {k.Initrd, layerInitrdFile}} {
		if err := atomicfile.Copy(filepath.Join(tree.Root, filepath.FromSlash(c.src)), filepath.Join(tmp, c.dst), 0o644); err != nil {
			return nil, fmt.Errorf("base layer: %w", err)
		}
	}
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	meta := LayerMeta{
		Format: layerFormat, Key: o.Key, Title: prettyName(tree), Kernel: k,
		Bytes: plan.Bytes, Inodes: plan.Inodes, DataBlocks: blocks, Digest: digest,
		Info: o.Info, Entries: tree.Sorted(),
	}
	data, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, layerMetaFile), data, 0o644); err != nil {
		return nil, err
	}
	if err := syncTree(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if l, oerr := OpenLayer(dir, o.Key); oerr == nil {
			return l, nil
		}
		return nil, fmt.Errorf("base layer: %w", err)
	}
	log.Info("base layer made", "dir", dir, "root_mib", plan.Bytes/mib, "entries", len(meta.Entries),
		"seconds", fmt.Sprintf("%.2f", time.Since(start).Seconds()))
	return &Layer{Dir: dir, Meta: meta}, nil
}

// OpenLayer reads the layer in dir made for key. A missing, partial or
// foreign folder is an error; the image's digest is checked when it is
// copied (WriteRawLayered).
func OpenLayer(dir, key string) (*Layer, error) {
	data, err := os.ReadFile(filepath.Join(dir, layerMetaFile))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", dir, err)
	}
	var m LayerMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("layer %s: %s: %w", dir, layerMetaFile, err)
	}
	switch {
	case m.Format != layerFormat:
		return nil, fmt.Errorf("layer %s: format %d, this imagebuilder writes %d", dir, m.Format, layerFormat)
	case m.Key != key:
		return nil, fmt.Errorf("layer %s: made for key %s, not %s", dir, m.Key, key)
	case len(m.Entries) == 0 || m.Digest == "" || m.Kernel.Version == "":
		return nil, fmt.Errorf("layer %s: %s is incomplete", dir, layerMetaFile)
	}
	for i, e := range m.Entries {
		if e == nil || (i > 0 && m.Entries[i-1].Path >= e.Path) {
			return nil, fmt.Errorf("layer %s: entries are not in path order at %d", dir, i)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, layerImageFile))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", dir, err)
	}
	if fi.Size() != m.Bytes {
		return nil, fmt.Errorf("layer %s: %s is %d bytes, layer.json says %d", dir, layerImageFile, fi.Size(), m.Bytes)
	}
	for _, f := range []string{layerLinuxFile, layerInitrdFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("layer %s: %w", dir, err)
		}
	}
	return &Layer{Dir: dir, Meta: m}, nil
}

// SameEntries reports the first path where the tree's entries differ from
// the layer's ("" when they are the same): a staged base must match the
// layer made from it before a build adds to the layer.
func (l *Layer) SameEntries(entries map[string]*overlay.Entry) string {
	if len(entries) != len(l.Meta.Entries) {
		have := make([]string, 0, len(entries))
		for p := range entries {
			have = append(have, p)
		}
		sort.Strings(have)
		for i, p := range have {
			if i >= len(l.Meta.Entries) || l.Meta.Entries[i].Path != p {
				return "/" + p
			}
		}
		return "/" + l.Meta.Entries[len(have)].Path
	}
	for _, want := range l.Meta.Entries {
		e, ok := entries[want.Path]
		if !ok || !sameEntry(e, want) {
			return "/" + want.Path
		}
	}
	return ""
}

func sameEntry(a, b *overlay.Entry) bool {
	if a.Path != b.Path || a.Kind != b.Kind || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID ||
		a.Link != b.Link || a.DevMajor != b.DevMajor || a.DevMinor != b.DevMinor || a.Size != b.Size ||
		len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	for k, v := range a.Xattrs {
		if w, ok := b.Xattrs[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

// syncTree fsyncs the files of a folder, then the folder.
func syncTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := syncFile(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
