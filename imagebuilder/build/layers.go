package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"imagebuilder/imagebuilder/disk"
	"imagebuilder/pkgbuild/atomicfile"
)

// keepLayers is how many base layers the cache keeps (the most recently
// used); each is about the size of its base's root filesystem.
const keepLayers = 4

// DefaultCacheDir is $IMAGEBUILDER_CACHE, else the user's cache folder's
// imagebuilder/.
func DefaultCacheDir() string {
	if d := os.Getenv("IMAGEBUILDER_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ".cache"
	}
	return filepath.Join(d, "imagebuilder")
}

// layerKey names the base layer of a build: the base's digest, the
// timestamp, the program that stages and fixes up the base (its own
// digest: any change to the distro profiles or the disk writer is a new
// layer) and the e2fsprogs that formats it.
func layerKey(ctx context.Context, digests *digestCache, baseHex string, epoch int64) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("layer key: %w", err)
	}
	selfSum, err := digests.sum(self)
	if err != nil {
		return "", fmt.Errorf("layer key: digest of %s: %w", self, err)
	}
	tools := disk.DefaultTools()
	mkfs, err := tools.MkfsExt4.Resolve()
	if err != nil {
		return "", err
	}
	// mke2fs -V prints its version (and the library's) on stderr.
	ver, _ := exec.CommandContext(ctx, mkfs, "-V").CombinedOutput()
	h := sha256.New()
	fmt.Fprintf(h, "imagebuilder base layer\x00%s\x00%d\x00%s\x00%s", baseHex, epoch, selfSum, strings.TrimSpace(string(ver)))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// layerDir is where the layer of key lives in the cache.
func layerDir(cache, key string) string { return filepath.Join(cache, "layers", key[:32]) }

// touchLayer marks a layer as used now (pruning keeps the recent ones).
func touchLayer(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// pruneLayers removes all but the keep most recently used layers, and
// temporary folders of interrupted builds older than an hour.
func pruneLayers(log *slog.Logger, cache string, keep int) {
	dir := filepath.Join(cache, "layers")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type layer struct {
		path string
		used time.Time
	}
	var layers []layer
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			if time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(p)
			}
			continue
		}
		layers = append(layers, layer{p, fi.ModTime()})
	}
	sort.Slice(layers, func(i, j int) bool { return layers[i].used.After(layers[j].used) })
	for _, l := range layers[min(keep, len(layers)):] {
		log.Info("removing an old base layer", "dir", l.path)
		os.RemoveAll(l.path)
	}
}

// digestCache remembers the sha256 of large local files (bases, this
// program) keyed by their identity: device, inode, size, mtime and ctime.
// Any write to a file changes its ctime, which no user can set back, so a
// changed file is always hashed again.
type digestCache struct {
	dir string // "" hashes every time
}

type digestEntry struct {
	Path             string
	Dev, Ino, Size   uint64
	Mtime, MtimeNsec int64
	Ctime, CtimeNsec int64
	SHA256           string
}

func (c *digestCache) sum(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return "", err
	}
	want := digestEntry{
		Dev: st.Dev, Ino: st.Ino, Size: uint64(st.Size), Path: abs,
		Mtime: st.Mtim.Sec, MtimeNsec: st.Mtim.Nsec, Ctime: st.Ctim.Sec, CtimeNsec: st.Ctim.Nsec,
	}
	var file string
	if c != nil && c.dir != "" {
		k := sha256.Sum256([]byte(abs))
		file = filepath.Join(c.dir, hex.EncodeToString(k[:16])+".json")
		if data, err := os.ReadFile(file); err == nil {
			var got digestEntry
			if json.Unmarshal(data, &got) == nil && got.SHA256 != "" {
				have := got
				have.SHA256 = ""
				if have == want {
					return got.SHA256, nil
				}
			}
		}
	}
	sum, err := atomicfile.SHA256(abs)
	if err != nil {
		return "", err
	}
	if file != "" {
		want.SHA256 = sum
		if data, err := json.Marshal(want); err == nil && os.MkdirAll(c.dir, 0o755) == nil {
			_ = atomicfile.WriteFile(file, data, 0o644)
		}
	}
	return sum, nil
}
