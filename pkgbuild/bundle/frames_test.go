package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"imagebuilder/pkgbuild/archive"
)

// longName makes a bundle path longer than a USTAR header holds.
var longName = strings.Repeat("a-rather-long-file-name-", 6)

// bigData is compressible, reproducible content of n bytes.
func bigData(seed, n int) string {
	rng := rand.New(rand.NewSource(int64(seed)))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rng.Intn(3)) + byte(i/3000%5)
	}
	return string(b)
}

// framedPackage writes a package tarball the way pkgbuild does: framed, at
// the default level.
func framedPackage(t *testing.T, dir, name, hash string, members ...pf) Package {
	t.Helper()
	sort.Slice(members, func(i, j int) bool { return trimSlash(members[i].name) < trimSlash(members[j].name) })
	var out bytes.Buffer
	zw, err := archive.NewParallelCompressorDefault(&out)
	if err != nil {
		t.Fatal(err)
	}
	w := archive.NewFramedWriter(zw, 12345)
	for _, m := range members {
		e := archive.Entry{Name: trimSlash(m.name), Mode: os.FileMode(m.mode), Linkname: m.link}
		switch {
		case m.name != e.Name:
			e.Type = archive.TypeDir
		case m.link != "":
			e.Type = archive.TypeSymlink
		default:
			e.Type, e.Size = archive.TypeFile, int64(len(m.data))
		}
		if err := w.Add(e, bytes.NewReader([]byte(m.data))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	id := name + "--" + hash
	p := filepath.Join(dir, id+".tar.zst")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out.Bytes())
	return Package{Name: name, ID: id, Tarball: p, SHA256: hex.EncodeToString(sum[:])}
}

// bigFrames returns the package tarball's frames that hold only big-file
// content, as compressed bytes.
func bigFrames(t *testing.T, tarball string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	fr := archive.NewFramedReaderBytes(data)
	defer fr.Close()
	if _, err := bytes.NewBuffer(nil).ReadFrom(fr); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range fr.Frames() {
		if f.Len >= archive.FramedFileSize {
			out = append(out, data[f.RawOff:f.RawOff+f.RawLen])
		}
	}
	return out
}

// TestAssembleCopiesPackageFrames: the frames of a framed package's big files
// go into the bundle as they are; the bundle is reproducible, lists the right
// digests, and extracts with the system tar to the packages' content. A
// streamed (unframed) package in the same bundle is compressed again.
func TestAssembleCopiesPackageFrames(t *testing.T) {
	dir := t.TempDir()
	big1, big2 := bigData(1, 300_000), bigData(2, archive.ChunkSize+100_000)
	a := framedPackage(t, dir, "a", hashA,
		d("bin"), x("bin/a", big1), x("bin/small", "small"),
		d("lib"), f("lib/big.so", big2), sl("lib/link", "big.so"),
		d("share"), f("share/"+longName, big1), // a PAX header
	)
	b := testPackage(t, dir, "b", hashB, nil, d("bin"), x("bin/b", bigData(3, 100_000)))
	in := Input{Prefix: "/opt/cluster", Packages: []Package{a, b}, SourceDateEpoch: 99}
	first, m := assemble(t, in)
	again, _ := assemble(t, in)
	if !bytes.Equal(first, again) {
		t.Fatal("assembling twice gave different bytes")
	}
	frames := bigFrames(t, a.Tarball)
	if len(frames) < 3 {
		t.Fatalf("package a has %d big-file frames, want at least 3", len(frames))
	}
	for i, fr := range frames {
		if !bytes.Contains(first, fr) {
			t.Errorf("big-file frame %d of package a is not in the bundle as it is", i)
		}
	}
	want := map[string]string{
		"packages/a--" + hashA + "/bin/a":             big1,
		"packages/a--" + hashA + "/lib/big.so":        big2,
		"packages/a--" + hashA + "/bin/small":         "small",
		"packages/b--" + hashB + "/bin/b":             bigData(3, 100_000),
		"packages/a--" + hashA + "/share/" + longName: big1,
	}
	_, ents := list(t, first)
	for _, e := range m.Entries {
		if data, ok := want[e.Path]; ok {
			if ents[e.Path].data != data {
				t.Errorf("%s: wrong content in the bundle", e.Path)
			}
			if e.SHA256 != sha256Hex([]byte(data)) || e.Size != int64(len(data)) {
				t.Errorf("%s: manifest lists %s (%d bytes)", e.Path, e.SHA256, e.Size)
			}
			delete(want, e.Path)
		}
	}
	if len(want) != 0 {
		t.Fatalf("manifest misses %v", want)
	}
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatal("zstd not found: apt-get install zstd")
	}
	bf := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := os.WriteFile(bf, first, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if o, err := exec.Command("tar", "--zstd", "-xf", bf, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, o)
	}
	for p, data := range map[string]string{"bin/a": big1, "lib/big.so": big2, "bin/b": bigData(3, 100_000), "packages/a--" + hashA + "/share/" + longName: big1} {
		got, err := os.ReadFile(filepath.Join(out, p))
		if err != nil || string(got) != data {
			t.Errorf("%s after tar -x: %d bytes, %v", p, len(got), err)
		}
	}
}

// TestSecondPassFromMemoryOrFile: the second pass gives the same bundle
// whether the first kept the tarball in memory or it reads the file again;
// from memory, a file replaced in between does not matter (the bundle holds
// what the first pass checked), from the file it fails the bundle.
func TestSecondPassFromMemoryOrFile(t *testing.T) {
	p := framedPackage(t, t.TempDir(), "a", hashA, d("bin"), x("bin/a", bigData(4, 200_000)), x("bin/z", "z"))
	write := func(b *budget) ([]byte, error) {
		sc, err := scanPackage(p, "/opt/cluster", b)
		if err != nil {
			t.Fatal(err)
		}
		if (sc.data != nil) != (b != nil) {
			t.Fatalf("kept in memory %v with budget %v", sc.data != nil, b != nil)
		}
		items := append([]item(nil), sc.items...)
		copies := 0
		for i := range items {
			items[i].src = 0
			if items[i].copies() {
				copies++
			}
		}
		if copies != 1 {
			t.Fatalf("%d items copy frames, want 1 (bin/a)", copies)
		}
		src := source{label: "package a", sha: sc.sha, file: p.Tarball, layout: sc.layout, data: sc.data}
		// Replace the tarball between the passes: same entries and sizes.
		other := framedPackage(t, t.TempDir(), "a", hashA, d("bin"), x("bin/a", bigData(5, 200_000)), x("bin/z", "y"))
		orig, err := os.ReadFile(p.Tarball)
		if err != nil {
			t.Fatal(err)
		}
		repl, err := os.ReadFile(other.Tarball)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.Tarball, repl, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(p.Tarball, orig, 0o644)
		var buf bytes.Buffer
		err = writePlan(&buf, items, []source{src}, 0)
		return buf.Bytes(), err
	}
	big := &budget{}
	big.left.Store(1 << 30)
	fromMemory, err := write(big)
	if err != nil {
		t.Fatalf("from memory: %v", err)
	}
	if _, err := write(nil); err == nil || !bytes.Contains([]byte(err.Error()), []byte("changed since it was first read")) {
		t.Fatalf("from the replaced file: %v", err)
	}
	_, ents := list(t, fromMemory)
	if ents["bin/a"].data != bigData(4, 200_000) || ents["bin/z"].data != "z" {
		t.Fatal("the bundle from memory does not hold what the first pass read")
	}
	small := &budget{}
	small.left.Store(10)
	if sc, err := scanPackage(p, "/opt/cluster", small); err != nil || sc.data != nil {
		t.Fatalf("over budget: kept %v, %v", sc != nil && sc.data != nil, err)
	}
}

// TestExtendCopiesFrames: the cluster bundle holds the base bundle's
// big-file frames as they are, and is the same whether the base bundle was
// kept in memory or spooled to a file.
func TestExtendCopiesFrames(t *testing.T) {
	dir := t.TempDir()
	big := bigData(6, 2*archive.ChunkSize+5000)
	a := framedPackage(t, dir, "a", hashA, d("bin"), x("bin/a", big), x("bin/small", "s"))
	b := testPackage(t, dir, "b", hashB, nil, d("bin"), x("bin/b", bigData(7, 90_000)))
	base, _ := assemble(t, Input{Prefix: "/opt/cluster", Packages: []Package{a, b}, Files: []File{{Path: "etc/cluster.env", Data: []byte("A=1\n")}}})
	extra := []File{{Path: "etc/cluster.env", Data: []byte("A=2\n")}, {Path: "etc/new", Data: []byte("n\n")}}
	var inMemory, spooledOut bytes.Buffer
	if _, err := extend(bytes.NewReader(base), &inMemory, extra, "cfg", retainBudget); err != nil {
		t.Fatal(err)
	}
	if _, err := extend(bytes.NewReader(base), &spooledOut, extra, "cfg", 1000); err != nil {
		t.Fatalf("spooled to a file: %v", err)
	}
	if !bytes.Equal(inMemory.Bytes(), spooledOut.Bytes()) {
		t.Fatal("the base bundle in memory and spooled to a file give different bundles")
	}
	frames := bigFrames(t, a.Tarball)
	if len(frames) < 2 {
		t.Fatalf("%d big-file frames", len(frames))
	}
	for i, fr := range frames {
		if !bytes.Contains(inMemory.Bytes(), fr) {
			t.Errorf("big-file frame %d is not in the cluster bundle as it is", i)
		}
	}
	_, ents := list(t, inMemory.Bytes())
	if ents["packages/a--"+hashA+"/bin/a"].data != big || ents["packages/b--"+hashB+"/bin/b"].data != bigData(7, 90_000) || ents["etc/cluster.env"].data != "A=2\n" || ents["etc/new"].data != "n\n" {
		t.Fatal("cluster bundle content is wrong")
	}
	// A base bundle damaged inside a copied frame is refused, not copied.
	bad := bytes.Clone(base)
	i := bytes.Index(bad, frames[1])
	bad[i+len(frames[1])/2] ^= 0xff
	if _, err := extend(bytes.NewReader(bad), &bytes.Buffer{}, extra, "cfg", retainBudget); err == nil {
		t.Fatal("a damaged base bundle was extended")
	}
}
