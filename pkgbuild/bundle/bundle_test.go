package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/pkgbuild/archive"
)

const (
	hashA = "0123456789abcdef0123456789abcdef"
	hashB = "fedcba9876543210fedcba9876543210"
)

// twoPackages writes package a (a daemon with a unit for master) and package b
// (tools, an agent unit, a hardlink).
func twoPackages(t *testing.T) []Package {
	t.Helper()
	dir := t.TempDir()
	a := testPackage(t, dir, "a", hashA, map[string][]string{"a.service": {"master"}},
		d("bin"), x("bin/a", "#!/bin/sh\necho a\n"),
		d("lib"), f("lib/liba.so", "ELF"),
		d("systemd"), f("systemd/a.service", "[Service]\nExecStart=/opt/cluster/bin/a\n"),
		d("share"), f("share/doc", "doc"), sl("share/link", "doc"),
		d("sysusers.d"), f("sysusers.d/a.conf", "u a - - - -\n"),
	)
	b := testPackage(t, dir, "b", hashB, map[string][]string{"b.service": {"agent", "agent_public"}, "b.socket": {"agent"}},
		d("bin"), x("bin/b", "b"), hl("bin/b2", "bin/b"),
		d("sbin"), x("sbin/bd", "bd"),
		d("systemd"), f("systemd/b.service", "[Service]\n"), f("systemd/b.socket", "[Socket]\n"),
		d("sysusers.d"), f("sysusers.d/b.conf", "u b - - - -\n"),
		d("tmpfiles.d"), f("tmpfiles.d/b.conf", "d /var/lib/b 0750 b b - -\n"),
		sl("abs", "/opt/cluster/packages/a--"+hashA+"/share/doc"),
	)
	return []Package{a, b}
}

func assemble(t *testing.T, in Input) ([]byte, *Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Assemble(&buf, in)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func baseInput(t *testing.T) Input {
	return Input{
		Prefix:     "/opt/cluster",
		Packages:   twoPackages(t),
		Files:      []File{{Path: "etc/cluster.env", Data: []byte("CLUSTER_NAME=old\n")}, {Path: "etc/keep", Mode: 0o600, Data: []byte("keep\n")}},
		ConfigHash: "cfg-1",
	}
}

func TestAssembleDeterministic(t *testing.T) {
	in := baseInput(t)
	first, _ := assemble(t, in)
	again, _ := assemble(t, in)
	if !bytes.Equal(first, again) {
		t.Fatal("assembling twice gave different bytes")
	}
	rev := in
	rev.Packages = []Package{in.Packages[1], in.Packages[0]}
	reordered, _ := assemble(t, rev)
	if !bytes.Equal(first, reordered) {
		t.Fatal("package order changed the bundle")
	}
	tr := tar.NewReader(mustDecompress(t, first))
	var prev string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || hdr.ModTime.Unix() != 0 || !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			t.Errorf("%s: header not normalised: %+v", hdr.Name, hdr)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if prev != "" && name <= prev {
			t.Errorf("%q after %q: not sorted", name, prev)
		}
		prev = name
	}
}

func mustDecompress(t *testing.T, b []byte) *bytes.Reader {
	t.Helper()
	zr, err := archive.NewDecompressor(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(out.Bytes())
}

func TestAssembleLayout(t *testing.T) {
	in := baseInput(t)
	b, m := assemble(t, in)
	names, got := list(t, b)
	idA, idB := in.Packages[0].ID, in.Packages[1].ID
	want := map[string]archive.Entry{
		"active":                        {Type: archive.TypeDir, Mode: 0o755},
		"active/a":                      {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../packages/" + idA},
		"active/b":                      {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../packages/" + idB},
		"bin/a":                         {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../active/a/bin/a"},
		"bin/b2":                        {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../active/b/bin/b2"},
		"lib/liba.so":                   {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../active/a/lib/liba.so"},
		"sbin/bd":                       {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../active/b/sbin/bd"},
		"sysusers.d":                    {Type: archive.TypeDir, Mode: 0o755},
		"sysusers.d/a.conf":             {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../active/a/sysusers.d/a.conf"},
		"sysusers.d/b.conf":             {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../active/b/sysusers.d/b.conf"},
		"tmpfiles.d/b.conf":             {Type: archive.TypeSymlink, Mode: 0o777, Linkname: "../active/b/tmpfiles.d/b.conf"},
		"packages/" + idA:               {Type: archive.TypeDir, Mode: 0o755},
		"packages/" + idA + "/bin/a":    {Type: archive.TypeFile, Mode: 0o755, Size: 17},
		"packages/" + idB + "/bin/b2":   {Type: archive.TypeHardlink, Mode: 0o644, Linkname: "packages/" + idB + "/bin/b"},
		"systemd/a.service":             {Type: archive.TypeFile, Mode: 0o644, Size: 39},
		"systemd/cluster-master.target": {Type: archive.TypeFile, Mode: 0o644},
		"etc/cluster.env":               {Type: archive.TypeFile, Mode: 0o644, Size: 17},
		"etc/keep":                      {Type: archive.TypeFile, Mode: 0o600, Size: 5},
		"active.json":                   {Type: archive.TypeFile, Mode: 0o644},
		"manifest.json":                 {Type: archive.TypeFile, Mode: 0o644},
	}
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		w.Name = p
		if w.Type == archive.TypeFile && w.Size == 0 {
			w.Size = g.e.Size
		}
		if g.e != w {
			t.Errorf("%s: got %+v, want %+v", p, g.e, w)
		}
	}
	for _, absent := range []string{"bin/share", "systemd/share", "bin/abs"} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s should not exist", absent)
		}
	}
	if s := got["systemd/a.service"].data; s != "[Service]\nExecStart=/opt/cluster/bin/a\n" {
		t.Errorf("systemd/a.service = %q", s)
	}
	var active struct {
		Packages map[string]string `json:"packages"`
	}
	if err := json.Unmarshal([]byte(got["active.json"].data), &active); err != nil {
		t.Fatal(err)
	}
	if active.Packages["a"] != idA || active.Packages["b"] != idB || len(active.Packages) != 2 {
		t.Errorf("active.json = %s", got["active.json"].data)
	}

	// The manifest in the bundle is the one returned, and ReadManifest finds it.
	rm, err := ReadManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := m.encode()
	if got["manifest.json"].data != string(enc) {
		t.Error("manifest.json differs from the returned manifest")
	}
	if rm.Prefix != "/opt/cluster" || rm.ConfigHash != "cfg-1" || len(rm.Packages) != 2 {
		t.Errorf("manifest header: %+v", rm)
	}
	if rm.Packages[0].Name != "a" || rm.Packages[0].ID != idA || rm.Packages[0].TarballSHA256 != in.Packages[0].SHA256 {
		t.Errorf("manifest package a: %+v", rm.Packages[0])
	}
	// Every path except manifest.json is in the manifest, with correct digests.
	if len(rm.Entries) != len(names)-1 {
		t.Errorf("manifest lists %d entries, bundle has %d (+manifest.json)", len(rm.Entries), len(names)-1)
	}
	for _, e := range rm.Entries {
		g, ok := got[e.Path]
		if !ok {
			t.Errorf("manifest lists %s, which is not in the bundle", e.Path)
			continue
		}
		if e.Type != g.e.Type.String() || modeBits(e.Mode) != uint32(g.e.Mode) {
			t.Errorf("%s: manifest %+v, bundle %+v", e.Path, e, g.e)
		}
		switch g.e.Type {
		case archive.TypeFile:
			sum := sha256.Sum256([]byte(g.data))
			if e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != g.e.Size {
				t.Errorf("%s: manifest digest %s/%d wrong", e.Path, e.SHA256, e.Size)
			}
		case archive.TypeHardlink:
			target := got[g.e.Linkname]
			sum := sha256.Sum256([]byte(target.data))
			if e.SHA256 != hex.EncodeToString(sum[:]) || e.Target != g.e.Linkname || e.Size != target.e.Size {
				t.Errorf("%s: hardlink manifest entry %+v", e.Path, e)
			}
		case archive.TypeSymlink:
			if e.Target != g.e.Linkname {
				t.Errorf("%s: target %q, want %q", e.Path, e.Target, g.e.Linkname)
			}
		}
	}
	if e, ok := rm.Lookup("etc/keep"); !ok || e.Mode != 0o600 {
		t.Errorf("etc/keep manifest entry: %+v", e)
	}
	raw, _ := json.Marshal(Entry{Path: "x", Type: "file", Mode: 0o755})
	if !strings.Contains(string(raw), `"mode":"0755"`) {
		t.Errorf("mode encoding: %s", raw)
	}
}

func modeBits(m Mode) uint32 { return uint32(m) }

func TestRoleTargets(t *testing.T) {
	b, _ := assemble(t, baseInput(t))
	_, got := list(t, b)
	want := map[string]string{
		"master":       "[Unit]\nDescription=Cluster role master\nPartOf=cluster.target\nRequires=cluster-ipdetect.service\nAfter=cluster-ipdetect.service\nWants=a.service\nAfter=a.service\n",
		"agent":        "[Unit]\nDescription=Cluster role agent\nPartOf=cluster.target\nRequires=cluster-ipdetect.service\nAfter=cluster-ipdetect.service\nWants=b.service b.socket\nAfter=b.service b.socket\n",
		"agent_public": "[Unit]\nDescription=Cluster role agent_public\nPartOf=cluster.target\nRequires=cluster-ipdetect.service\nAfter=cluster-ipdetect.service\nWants=b.service\nAfter=b.service\n",
	}
	for role, w := range want {
		if g := got["systemd/cluster-"+role+".target"].data; g != w {
			t.Errorf("cluster-%s.target:\n%s\nwant:\n%s", role, g, w)
		}
	}
	empty, _ := assemble(t, Input{Prefix: "/opt/cluster"})
	_, got = list(t, empty)
	if g := got["systemd/cluster-agent.target"].data; g != "[Unit]\nDescription=Cluster role agent\nPartOf=cluster.target\nRequires=cluster-ipdetect.service\nAfter=cluster-ipdetect.service\n" {
		t.Errorf("empty agent target: %q", g)
	}
}

// TestExtractWithSystemTar is the oracle check: GNU tar extracts the bundle and
// the symlink farm resolves.
func TestExtractWithSystemTar(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatal("zstd not found: apt-get install zstd")
	}
	b, _ := assemble(t, baseInput(t))
	dir := t.TempDir()
	bf := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := os.WriteFile(bf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "--zstd", "-xf", bf, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	for p, want := range map[string]string{"bin/a": "#!/bin/sh\necho a\n", "sbin/bd": "bd", "bin/b2": "b", "etc/keep": "keep\n"} {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", p, got, err)
		}
	}
}

func TestAssembleRefusesHostilePackage(t *testing.T) {
	tests := []struct {
		name    string
		members []pf
		entry   string
	}{
		{"dotdot", []pf{f("../x", "evil")}, "../x"},
		{"absolute", []pf{f("/etc/x", "evil")}, "/etc/x"},
		{"symlink escaping then file through it", []pf{sl("evil", "../../../etc"), f("evil/x", "evil")}, "evil"},
		{"symlink into another package", []pf{sl("evil", "../b--"+hashB)}, "evil"},
		{"file through allowed symlink", []pf{sl("l", "/opt/cluster/etc"), f("l/x", "evil")}, "l/x"},
		{"hardlink to outside", []pf{hl("x", "../../etc/passwd")}, "x"},
		{"device", []pf{{typ: tar.TypeBlock, name: "sda"}}, "sda"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p, sum := writeTarball(t, dir, "evil--"+hashA+".tar.zst", tc.members...)
			var buf bytes.Buffer
			_, err := Assemble(&buf, Input{Prefix: "/opt/cluster", Packages: []Package{{Name: "evil", ID: "evil--" + hashA, Tarball: p, SHA256: sum}}})
			var ee *archive.EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want an entry error", err)
			}
			if ee.Name != tc.entry || !strings.Contains(err.Error(), "package evil") {
				t.Errorf("error %q should name package evil and entry %q", err, tc.entry)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before refusing", buf.Len())
			}
		})
	}
}

func TestAssembleRefusesConflicts(t *testing.T) {
	dir := t.TempDir()
	one := testPackage(t, dir, "one", hashA, nil, d("bin"), x("bin/tool", "1"))
	two := testPackage(t, dir, "two", hashB, nil, d("bin"), x("bin/tool", "2"))
	unitA := testPackage(t, dir, "ua", hashA, nil, d("systemd"), f("systemd/x.service", "a"))
	unitB := testPackage(t, dir, "ub", hashB, nil, d("systemd"), f("systemd/x.service", "b"))
	noUnit := testPackage(t, dir, "nounit", hashA, map[string][]string{"missing.service": {"master"}}, d("bin"))
	badRole := testPackage(t, dir, "badrole", hashA, map[string][]string{"x.service": {"worker"}}, d("systemd"), f("systemd/x.service", "a"))
	target := testPackage(t, dir, "target", hashA, nil, d("systemd"), f("systemd/cluster-master.target", "a"))
	linkUnit := testPackage(t, dir, "linkunit", hashA, nil, d("systemd"), sl("systemd/x.service", "y.service"))
	wrongSum := one
	wrongSum.SHA256 = strings.Repeat("0", 64)
	badID := one
	badID.ID = "other--" + hashA
	tests := []struct {
		name  string
		in    Input
		wants []string
	}{
		{"same bin", Input{Packages: []Package{one, two}}, []string{"one", "two", "bin/tool"}},
		{"same unit", Input{Packages: []Package{unitA, unitB}}, []string{"ua", "ub", "x.service"}},
		{"unit not shipped", Input{Packages: []Package{noUnit}}, []string{"nounit", "missing.service"}},
		{"unknown role", Input{Packages: []Package{badRole}}, []string{"badrole", "worker"}},
		{"generated target", Input{Packages: []Package{target}}, []string{"target", "cluster-master.target"}},
		{"unit symlink", Input{Packages: []Package{linkUnit}}, []string{"systemd/x.service", "symlink"}},
		{"sha mismatch", Input{Packages: []Package{wrongSum}}, []string{"one", "sha256"}},
		{"id not name--hash", Input{Packages: []Package{badID}}, []string{"other--"}},
		{"same package twice", Input{Packages: []Package{one, one}}, []string{"one", "twice"}},
		{"etc outside etc", Input{Files: []File{{Path: "bin/x"}}}, []string{"bin/x", "etc/"}},
		{"etc dotdot", Input{Files: []File{{Path: "etc/../x"}}}, []string{"etc/../x"}},
		{"etc twice", Input{Files: []File{{Path: "etc/a"}, {Path: "etc/a"}}}, []string{"etc/a"}},
		{"etc file and dir", Input{Files: []File{{Path: "etc/a"}, {Path: "etc/a/b"}}}, []string{"etc/a"}},
		{"bad prefix", Input{Prefix: "opt/cluster"}, []string{"prefix"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in.Prefix == "" {
				tc.in.Prefix = "/opt/cluster"
			}
			_, err := Assemble(&bytes.Buffer{}, tc.in)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestExtend(t *testing.T) {
	in := baseInput(t)
	base, bm := assemble(t, in)
	extra := []File{
		{Path: "etc/cluster.env", Data: []byte("CLUSTER_NAME=new\n")},
		{Path: "etc/ip-detect", Mode: 0o755, Data: []byte("#!/bin/sh\necho 10.0.2.15\n")},
		{Path: "etc/sub/dir/file", Data: []byte("deep\n")},
	}
	var out bytes.Buffer
	m, err := Extend(bytes.NewReader(base), &out, extra, "cfg-2")
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if _, err := Extend(bytes.NewReader(base), &again, extra, "cfg-2"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Fatal("extending twice gave different bytes")
	}
	baseNames, baseGot := list(t, base)
	names, got := list(t, out.Bytes())
	if got["etc/cluster.env"].data != "CLUSTER_NAME=new\n" {
		t.Errorf("etc/cluster.env = %q", got["etc/cluster.env"].data)
	}
	if e := got["etc/ip-detect"].e; e.Mode != 0o755 || got["etc/ip-detect"].data != "#!/bin/sh\necho 10.0.2.15\n" {
		t.Errorf("etc/ip-detect: %+v", e)
	}
	for _, dir := range []string{"etc/sub", "etc/sub/dir"} {
		if got[dir].e.Type != archive.TypeDir {
			t.Errorf("%s missing", dir)
		}
	}
	if got["etc/keep"].data != "keep\n" {
		t.Error("etc/keep was not kept")
	}
	for _, n := range baseNames {
		if strings.HasPrefix(n, "etc/") || n == manifestPath {
			continue
		}
		if got[n] != baseGot[n] {
			t.Errorf("%s changed: %+v -> %+v", n, baseGot[n].e, got[n].e)
		}
	}
	if len(names) != len(baseNames)+4 {
		t.Errorf("extended bundle has %d entries, want %d", len(names), len(baseNames)+4)
	}
	if m.ConfigHash != "cfg-2" || m.Prefix != bm.Prefix || len(m.Packages) != 2 || m.Packages[1].TarballSHA256 != bm.Packages[1].TarballSHA256 {
		t.Errorf("manifest: %+v", m)
	}
	rm, err := ReadManifest(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := rm.Lookup("etc/cluster.env"); !ok || e.SHA256 != sha256Hex([]byte("CLUSTER_NAME=new\n")) {
		t.Errorf("manifest etc/cluster.env: %+v", e)
	}
	// Extending the extended bundle works too.
	if _, err := Extend(bytes.NewReader(out.Bytes()), &bytes.Buffer{}, extra[:1], "cfg-3"); err != nil {
		t.Fatal(err)
	}
}

func TestExtendRefuses(t *testing.T) {
	base, _ := assemble(t, baseInput(t))

	// A base whose manifest does not match its content.
	names, got := list(t, base)
	var raw bytes.Buffer
	w := archive.NewWriter(&raw, 0)
	for _, n := range names {
		e := got[n]
		data := e.data
		if n == "etc/keep" {
			data = "KEEP\n"
		}
		if err := w.Add(e.e, strings.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	tampered := compress(t, raw.Bytes())

	hostileDir := t.TempDir()
	hostile, _ := writeTarball(t, hostileDir, "h.tar.zst", f("../x", "evil"), f("manifest.json", "{}"))
	hostileBytes, _ := os.ReadFile(hostile)

	tests := []struct {
		name  string
		base  []byte
		extra []File
		want  string
	}{
		{"tampered base", tampered, nil, "does not match"},
		{"hostile base", hostileBytes, nil, "../x"},
		{"not etc", base, []File{{Path: "bin/a", Data: []byte("x")}}, "must be under etc/"},
		{"replace a directory", base, []File{{Path: "etc", Data: []byte("x")}}, "etc"},
		{"garbage", []byte("not a bundle"), nil, "base bundle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Extend(bytes.NewReader(tc.base), &bytes.Buffer{}, tc.extra, "cfg")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func compress(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	zw, err := archive.NewCompressor(&out)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func TestAssembleFileNamedByDigest(t *testing.T) {
	dir := t.TempDir()
	in := baseInput(t)
	p, digest, m, err := AssembleFile(dir, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Digest(bytes.NewReader(b))
	if digest != want || filepath.Base(p) != "bundle-"+want[:12]+".tar.zst" || m == nil {
		t.Errorf("path %s digest %s, want digest %s", p, digest, want)
	}
	ep, _, em, err := ExtendFile(p, dir, []File{{Path: "etc/x", Data: []byte("x")}}, "cfg-x")
	if err != nil {
		t.Fatal(err)
	}
	if ep == p || em.ConfigHash != "cfg-x" {
		t.Errorf("extended bundle %s, manifest %+v", ep, em)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("dir holds %d files, want the two bundles (no temp files)", len(ents))
	}
}

// TestWritePlanNoticesChangedTarball: the second pass checks the tarball's
// digest against the first pass's, so a file replaced in between fails the
// bundle instead of slipping in unchecked content.
func TestWritePlanNoticesChangedTarball(t *testing.T) {
	p := testPackage(t, t.TempDir(), "a", hashA, nil, d("bin"), x("bin/a", "one"))
	sc, err := scanPackage(p, "/opt/cluster", nil)
	if err != nil {
		t.Fatal(err)
	}
	items := append([]item(nil), sc.items...)
	for i := range items {
		items[i].src = 0
	}
	src := source{label: "package a", sha: sc.sha, file: p.Tarball, layout: sc.layout}
	if err := writePlan(io.Discard, items, []source{src}, 0); err != nil {
		t.Fatalf("unchanged tarball: %v", err)
	}
	// Same entries, same sizes, other content: only the digest tells.
	other := testPackage(t, t.TempDir(), "a", hashA, nil, d("bin"), x("bin/a", "two"))
	data, err := os.ReadFile(other.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Tarball, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err = writePlan(io.Discard, items, []source{src}, 0)
	if err == nil || !strings.Contains(err.Error(), "changed since it was first read") {
		t.Fatalf("replaced tarball: %v", err)
	}
}
