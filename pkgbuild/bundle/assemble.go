package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"imagebuilder/pkgbuild/archive"
)

// maxUnitSize bounds a unit file copied into systemd/.
const maxUnitSize = 1 << 20

// Assemble writes the bundle for in to w and returns its manifest. Every entry of
// every package tarball is validated; a hostile entry fails the whole bundle with
// the entry's name.
func Assemble(w io.Writer, in Input) (*Manifest, error) {
	if err := checkPrefix(in.Prefix); err != nil {
		return nil, err
	}
	if in.SourceDateEpoch < 0 {
		return nil, fmt.Errorf("negative source date epoch %d", in.SourceDateEpoch)
	}
	if err := checkPackages(in.Packages); err != nil {
		return nil, err
	}
	pkgs := append([]Package(nil), in.Packages...)
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })

	var items []item
	var sources []source
	var records []PackageRecord
	active := map[string]string{}
	farm := map[string]string{}      // bundle path -> package name
	unitOwner := map[string]string{} // unit -> package name
	roleUnits := map[string][]string{}
	scans, err := scanPackages(pkgs, in.Prefix)
	if err != nil {
		return nil, err
	}
	for i, p := range pkgs {
		sc := scans[i]
		root := "packages/" + p.ID
		src := len(sources)
		sources = append(sources, source{
			label:  fmt.Sprintf("package %s (%s)", p.Name, p.Tarball),
			sha:    sc.sha,
			file:   p.Tarball,
			layout: sc.layout,
			data:   sc.data,
		})
		items = append(items, genDir(root), genSymlink("active/"+p.Name, "../"+root))
		for _, it := range sc.items {
			it.src = src
			it.e.Name = root + "/" + it.e.Name
			if it.e.Type == archive.TypeHardlink {
				it.e.Linkname = root + "/" + it.e.Linkname
			}
			items = append(items, it)
		}
		for _, child := range sc.farm {
			if other, ok := farm[child]; ok {
				return nil, fmt.Errorf("packages %s and %s both provide %s", other, p.Name, child)
			}
			farm[child] = p.Name
			items = append(items, genSymlink(child, "../active/"+p.Name+"/"+child))
		}
		for _, u := range sc.units {
			if other, ok := unitOwner[u.name]; ok {
				return nil, fmt.Errorf("packages %s and %s both ship unit %s", other, p.Name, u.name)
			}
			unitOwner[u.name] = p.Name
			items = append(items, genFile("systemd/"+u.name, u.mode, u.data))
		}
		for unit, roles := range p.Units {
			if unitOwner[unit] != p.Name {
				return nil, fmt.Errorf("package %s lists unit %s but ships no systemd/%s", p.Name, unit, unit)
			}
			for _, r := range roles {
				roleUnits[r] = append(roleUnits[r], unit)
			}
		}
		active[p.Name] = p.ID
		records = append(records, PackageRecord{Name: p.Name, ID: p.ID, TarballSHA256: sc.sha, Units: copyUnits(p.Units)})
	}
	for _, role := range Roles() {
		name := "cluster-" + role + ".target"
		if owner, ok := unitOwner[name]; ok {
			return nil, fmt.Errorf("package %s ships %s, which the bundle generates", owner, name)
		}
		items = append(items, genFile("systemd/"+name, 0o644, roleTarget(role, roleUnits[role])))
	}
	for _, d := range topDirs {
		items = append(items, genDir(d))
	}
	etc, err := etcItems(in.Files, nil)
	if err != nil {
		return nil, err
	}
	items = append(items, etc...)
	act, err := json.MarshalIndent(struct {
		Packages map[string]string `json:"packages"`
	}{active}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", activePath, err)
	}
	items = append(items, genFile(activePath, 0o644, append(act, '\n')))

	if records == nil {
		records = []PackageRecord{}
	}
	m := &Manifest{
		Version:         ManifestVersion,
		Prefix:          in.Prefix,
		ConfigHash:      in.ConfigHash,
		SourceDateEpoch: in.SourceDateEpoch,
		Packages:        records,
	}
	return finishBundle(w, m, items, sources)
}

// finishBundle sorts items, fills m.Entries, adds manifest.json and writes.
func finishBundle(w io.Writer, m *Manifest, items []item, sources []source) (*Manifest, error) {
	if err := sortItems(items); err != nil {
		return nil, err
	}
	m.Entries = manifestEntries(items)
	mb, err := m.encode()
	if err != nil {
		return nil, err
	}
	items = append(items, genFile(manifestPath, 0o644, mb))
	if err := sortItems(items); err != nil {
		return nil, err
	}
	if err := writePlan(w, items, sources, m.SourceDateEpoch); err != nil {
		return nil, err
	}
	return m, nil
}

func copyUnits(u map[string][]string) map[string][]string {
	if len(u) == 0 {
		return nil
	}
	out := make(map[string][]string, len(u))
	for k, v := range u {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// roleTarget is the generated systemd/cluster-<role>.target. It requires
// and follows cluster-ipdetect.service (the firstboot package's): a role
// runs only with a detected IP, and a target enqueued while ip-detect
// still runs fails with it instead of becoming active without its
// services.
func roleTarget(role string, units []string) []byte {
	units = append([]string(nil), units...)
	sort.Strings(units)
	var b bytes.Buffer
	fmt.Fprintf(&b, "[Unit]\nDescription=Cluster role %s\nPartOf=cluster.target\n", role)
	b.WriteString("Requires=cluster-ipdetect.service\nAfter=cluster-ipdetect.service\n")
	if len(units) > 0 {
		fmt.Fprintf(&b, "Wants=%s\nAfter=%s\n", strings.Join(units, " "), strings.Join(units, " "))
	}
	return b.Bytes()
}

// etcItems returns the config files and their parent directories below etc/.
// existing says which bundle paths already exist and their type.
func etcItems(files []File, existing map[string]archive.Type) ([]item, error) {
	var items []item
	seen := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range files {
		if err := checkFile(f); err != nil {
			return nil, err
		}
		if seen[f.Path] || dirs[f.Path] {
			return nil, fmt.Errorf("config file %q given twice or also used as a directory", f.Path)
		}
		if t, ok := existing[f.Path]; ok && t != archive.TypeFile {
			return nil, fmt.Errorf("config file %q would replace a %v", f.Path, t)
		}
		seen[f.Path] = true
		items = append(items, genFile(f.Path, fileMode(f.Mode), f.Data))
		for d := path.Dir(f.Path); d != "etc"; d = path.Dir(d) {
			if seen[d] {
				return nil, fmt.Errorf("config file %q is also a directory of %q", d, f.Path)
			}
			if t, ok := existing[d]; ok {
				if t != archive.TypeDir {
					return nil, fmt.Errorf("config file %q: %q is a %v in the base bundle", f.Path, d, t)
				}
				continue
			}
			if !dirs[d] {
				dirs[d] = true
				items = append(items, genDir(d))
			}
		}
	}
	return items, nil
}

type unitFile struct {
	name string
	mode fs.FileMode
	data []byte
}

// packageScan is what the first pass learns from a package tarball.
// scanPackages scans the packages concurrently (one goroutine per CPU) and
// returns the scans in order, or the first package's error.
func scanPackages(pkgs []Package, prefix string) ([]*packageScan, error) {
	scans := make([]*packageScan, len(pkgs))
	errs := make([]error, len(pkgs))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	b := &budget{}
	b.left.Store(retainBudget)
	var wg sync.WaitGroup
	for i, p := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			scans[i], errs[i] = scanPackage(p, prefix, b)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return scans, nil
}

type packageScan struct {
	sha    string
	layout *layout
	data   []byte // the whole tarball, when kept in memory
	items  []item // names relative to the package root
	farm   []string
	units  []unitFile
}

// retainBudget is how many bytes of package tarballs one assembly keeps in
// memory between its two passes; the second pass reads the others again.
const retainBudget = 512 << 20

// budget counts down the bytes of package tarballs still to keep in memory.
type budget struct{ left atomic.Int64 }

func (b *budget) take(n int64) bool {
	if b == nil {
		return false
	}
	if b.left.Add(-n) >= 0 {
		return true
	}
	b.left.Add(n)
	return false
}

// readRetained reads all of f when the budget allows, else returns nil.
func readRetained(f *os.File, b *budget) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || !b.take(fi.Size()) {
		return nil, nil
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	if n, _ := f.Read(make([]byte, 1)); n != 0 {
		return nil, errors.New("the file grew while it was read")
	}
	return data, nil
}

// scanPackage reads a package tarball (once) and learns its entries, their
// digests and its frame layout. With a budget the tarball may be kept in
// memory for the second pass.
func scanPackage(p Package, prefix string, budget *budget) (*packageScan, error) {
	fail := func(err error) (*packageScan, error) {
		return nil, fmt.Errorf("package %s (%s): %w", p.Name, p.Tarball, err)
	}
	f, err := os.Open(p.Tarball)
	if err != nil {
		return fail(fmt.Errorf("opening package tarball: %w", err))
	}
	defer f.Close()
	sc := &packageScan{}
	// One read of the file: the tarball's sha256 is taken from the bytes the
	// decompressor reads (or, for a tarball kept in memory, from those bytes
	// while they are decompressed), and checked once all have gone through.
	var zr *archive.FramedReader
	var digest func() (string, error)
	if sc.data, err = readRetained(f, budget); err != nil {
		return fail(fmt.Errorf("reading package tarball: %w", err))
	}
	if sc.data != nil {
		sum := make(chan [sha256.Size]byte, 1)
		go func() { sum <- sha256.Sum256(sc.data) }()
		digest = sync.OnceValues(func() (string, error) {
			s := <-sum
			return hex.EncodeToString(s[:]), nil
		})
		zr = archive.NewFramedReaderBytes(sc.data)
	} else {
		fileHash := sha256.New()
		raw := io.TeeReader(f, fileHash)
		zr = archive.NewFramedReader(raw)
		digest = sync.OnceValues(func() (string, error) {
			zr.Close() // nothing reads raw behind our back any more
			if _, err := io.Copy(io.Discard, raw); err != nil {
				return "", err
			}
			return hex.EncodeToString(fileHash.Sum(nil)), nil
		})
	}
	defer zr.Close()
	rd := archive.NewReader(zr, archive.Policy{Prefix: prefix})
	// A tarball that is not what the caller expects is reported as such, even
	// when it does not parse.
	parseFail := fail
	fail = func(err error) (*packageScan, error) {
		if p.SHA256 != "" {
			if got, derr := digest(); derr == nil && got != p.SHA256 {
				return parseFail(fmt.Errorf("tarball sha256 %s, want %s", got, p.SHA256))
			}
		}
		return parseFail(err)
	}
	fileSHA := map[string]string{}
	fileSize := map[string]int64{}
	types := map[string]archive.Type{}
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		types[e.Name] = e.Type
		it := item{e: *e, off: zr.Offset()}
		dir, base := path.Split(e.Name)
		dir = strings.TrimSuffix(dir, "/")
		switch e.Type {
		case archive.TypeFile:
			h := sha256.New()
			var unit bytes.Buffer
			var wr io.Writer = h
			isUnit := dir == "systemd"
			if isUnit {
				if e.Size > maxUnitSize {
					return fail(fmt.Errorf("unit systemd/%s is larger than %d bytes", base, maxUnitSize))
				}
				wr = io.MultiWriter(h, &unit)
			}
			if _, err := io.Copy(wr, rd); err != nil {
				return fail(fmt.Errorf("reading %q: %w", e.Name, err))
			}
			it.sha, it.size = hex.EncodeToString(h.Sum(nil)), e.Size
			fileSHA[e.Name], fileSize[e.Name] = it.sha, e.Size
			if isUnit {
				sc.units = append(sc.units, unitFile{name: base, mode: e.Mode, data: unit.Bytes()})
			}
		case archive.TypeHardlink:
			it.sha, it.size = fileSHA[e.Linkname], fileSize[e.Linkname]
		}
		if e.Type != archive.TypeFile && (dir == "systemd" || (e.Name == "systemd" && e.Type != archive.TypeDir)) {
			return fail(fmt.Errorf("%q is a %v; systemd/ may hold only regular unit files", e.Name, e.Type))
		}
		if isFarmDir(dir) && types[dir] == archive.TypeDir {
			sc.farm = append(sc.farm, e.Name)
		}
		sc.items = append(sc.items, it)
	}
	// The rest of the zstd stream (its checksum is checked on the way) and of
	// the file.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return fail(fmt.Errorf("reading past the archive's end: %w", err))
	}
	if sc.sha, err = digest(); err != nil {
		return fail(fmt.Errorf("digesting package tarball: %w", err))
	}
	if p.SHA256 != "" && sc.sha != p.SHA256 {
		return fail(fmt.Errorf("tarball sha256 %s, want %s", sc.sha, p.SHA256))
	}
	sc.layout = newLayout(zr)
	sc.layout.markCopies(sc.items)
	return sc, nil
}

func isFarmDir(d string) bool {
	for _, f := range farmDirs {
		if d == f {
			return true
		}
	}
	return false
}
