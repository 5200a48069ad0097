package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// member is one raw tar member for crafting (possibly hostile) archives.
type member struct {
	typ  byte
	name string
	link string
	mode int64
	data string
}

func rawTar(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		mode := m.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Typeflag: m.typ, Name: m.name, Linkname: m.link, Mode: mode, Size: int64(len(m.data))}
		if m.typ == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Typeflag: m.typ, Name: m.name, PAXRecords: map[string]string{"comment": "x"}}
		}
		if m.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("writing %q: %v", m.name, err)
		}
		if hdr.Size > 0 {
			if _, err := io.WriteString(tw, m.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(data []byte, p Policy) ([]Entry, error) {
	r := NewReader(bytes.NewReader(data), p)
	var out []Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, *e)
	}
}

func dir(name string) member        { return member{typ: tar.TypeDir, name: name + "/", mode: 0o755} }
func file(name, data string) member { return member{typ: tar.TypeReg, name: name, data: data} }
func symlink(name, target string) member {
	return member{typ: tar.TypeSymlink, name: name, link: target, mode: 0o777}
}
func hardlink(name, target string) member {
	return member{typ: tar.TypeLink, name: name, link: target}
}

const prefix = "/opt/cluster"

func TestReaderRefusesHostileEntries(t *testing.T) {
	tests := []struct {
		name    string
		members []member
		entry   string // the entry the error must name
	}{
		{"dotdot", []member{file("../x", "evil")}, "../x"},
		{"dotdot inside", []member{dir("a"), file("a/../../x", "evil")}, "a/../../x"},
		{"absolute", []member{file("/etc/x", "evil")}, "/etc/x"},
		{"empty name", []member{file("", "evil")}, ""},
		{"symlink escaping then file through it", []member{symlink("evil", "../../.."), file("evil/x", "evil")}, "evil"},
		{"allowed symlink then file through it", []member{dir("a"), symlink("a/l", "/opt/cluster/x"), file("a/l/x", "evil")}, "a/l/x"},
		{"symlink absolute outside prefix", []member{symlink("etc", "/etc")}, "etc"},
		{"symlink prefix lookalike", []member{symlink("etc", "/opt/cluster-evil/x")}, "etc"},
		{"symlink unclean target", []member{dir("a"), symlink("a/x", "b/../../..")}, "a/x"},
		{"symlink deep escape", []member{dir("a"), dir("a/b"), symlink("a/b/x", "../../../y")}, "a/b/x"},
		{"hardlink to outside", []member{hardlink("x", "../../etc/passwd")}, "x"},
		{"hardlink absolute", []member{hardlink("x", "/etc/passwd")}, "x"},
		{"hardlink to missing", []member{hardlink("x", "y")}, "x"},
		{"hardlink to dir", []member{dir("d"), hardlink("x", "d")}, "x"},
		{"hardlink to symlink", []member{symlink("s", "t"), hardlink("x", "s")}, "x"},
		{"device", []member{{typ: tar.TypeChar, name: "dev"}}, "dev"},
		{"fifo", []member{{typ: tar.TypeFifo, name: "fifo"}}, "fifo"},
		{"setuid", []member{{typ: tar.TypeReg, name: "suid", mode: 0o4755}}, "suid"},
		{"duplicate", []member{file("a", "1"), file("a", "2")}, "a"},
		{"unsorted", []member{file("b", "1"), file("a", "2")}, "a"},
		{"missing parent", []member{file("a/b", "1")}, "a/b"},
		{"parent is file", []member{file("a", "1"), file("a/b", "2")}, "a/b"},
		{"dot slash", []member{file("./a", "1")}, "./a"},
		{"global header", []member{{typ: tar.TypeXGlobalHeader, name: "g"}}, "g"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(rawTar(t, tc.members...), Policy{Prefix: prefix})
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want an *EntryError", err)
			}
			if ee.Name != tc.entry {
				t.Errorf("error names %q, want %q (%v)", ee.Name, tc.entry, err)
			}
		})
	}
}

func TestReaderScope(t *testing.T) {
	scope := func(name string) string {
		if rest, ok := strings.CutPrefix(name, "packages/"); ok {
			id, _, _ := strings.Cut(rest, "/")
			return "packages/" + id
		}
		return ""
	}
	base := []member{dir("packages"), dir("packages/0"), file("packages/0/y", "y"), dir("packages/a"), dir("packages/a/bin"), file("packages/a/bin/x", "x")}
	tests := []struct {
		name string
		add  member
		ok   bool
	}{
		{"inside", symlink("packages/a/bin/z", "x"), true},
		{"to package root", symlink("packages/a/bin/z", ".."), true},
		{"to sibling package", symlink("packages/a/bin/z", "../../0/y"), false},
		{"to bundle root", symlink("packages/a/bin/z", "../../.."), false},
		{"absolute under prefix", symlink("packages/a/bin/z", "/opt/cluster/packages/0/y"), true},
		{"absolute prefix itself", symlink("packages/a/bin/z", "/opt/cluster"), true},
		{"hardlink across packages", hardlink("packages/a/bin/z", "packages/0/y"), false},
		{"hardlink inside", hardlink("packages/a/bin/z", "packages/a/bin/x"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms := append(append([]member(nil), base...), tc.add)
			_, err := readAll(rawTar(t, ms...), Policy{Prefix: prefix, Scope: scope})
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, 1700000000)
	long := strings.Repeat("z", 120)
	ents := []struct {
		e    Entry
		data string
	}{
		{Entry{Name: "bin", Type: TypeDir, Mode: 0o755}, ""},
		{Entry{Name: "bin/tool", Type: TypeFile, Mode: 0o755, Size: 5}, "hello"},
		{Entry{Name: "bin/tool2", Type: TypeHardlink, Mode: 0o755, Linkname: "bin/tool"}, ""},
		{Entry{Name: "lib", Type: TypeSymlink, Mode: 0o777, Linkname: "bin"}, ""},
		{Entry{Name: long, Type: TypeDir, Mode: 0o700}, ""},
		{Entry{Name: long + "/f", Type: TypeFile, Mode: 0o600, Size: 0}, ""},
	}
	for _, x := range ents {
		if err := w.Add(x.e, strings.NewReader(x.data)); err != nil {
			t.Fatalf("add %s: %v", x.e.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Headers: uid/gid 0, no names, fixed mtime, no atime/ctime.
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || hdr.ModTime.Unix() != 1700000000 || !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			t.Errorf("%s: header not normalised: %+v", hdr.Name, hdr)
		}
	}
	got, err := readAll(buf.Bytes(), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ents) {
		t.Fatalf("read %d entries, want %d", len(got), len(ents))
	}
	for i := range got {
		if got[i] != ents[i].e {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], ents[i].e)
		}
	}
}

func TestWriterRefusesOutOfOrder(t *testing.T) {
	tests := []struct {
		name string
		ents []Entry
	}{
		{"unsorted", []Entry{{Name: "b", Type: TypeDir}, {Name: "a", Type: TypeDir}}},
		{"duplicate", []Entry{{Name: "a", Type: TypeDir}, {Name: "a", Type: TypeDir}}},
		{"no parent", []Entry{{Name: "a/b", Type: TypeDir}}},
		{"bad name", []Entry{{Name: "../a", Type: TypeDir}}},
		{"hardlink first", []Entry{{Name: "a", Type: TypeHardlink, Linkname: "b"}}},
		{"setuid", []Entry{{Name: "a", Type: TypeDir, Mode: 0o4755}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter(io.Discard, 0)
			var err error
			for _, e := range tc.ents {
				if err = w.Add(e, nil); err != nil {
					break
				}
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestLenientExtract(t *testing.T) {
	data := rawTar(t,
		member{typ: tar.TypeXGlobalHeader, name: "pax_global_header"},
		dir("./"),
		file("./pkg-1.0/src/main.c", "int main;"),
		symlink("./pkg-1.0/link", "/usr/bin/anything"),
		hardlink("./pkg-1.0/copy", "./pkg-1.0/src/main.c"),
		dir("./pkg-1.0/src"),
	)
	dest := t.TempDir()
	if err := Extract(NewReader(bytes.NewReader(data), Policy{Lenient: true}), dest); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dest, "pkg-1.0/copy"))
	if err != nil || string(b) != "int main;" {
		t.Fatalf("copy: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "pkg-1.0/link")); err != nil || l != "/usr/bin/anything" {
		t.Fatalf("link: %q %v", l, err)
	}

	hostile := []struct {
		name    string
		members []member
	}{
		{"through symlink", []member{symlink("a", "/tmp"), file("a/x", "evil")}},
		{"through implicit dir turned symlink", []member{file("a/x", "1"), symlink("a", "/tmp")}},
		{"dotdot", []member{file("./../x", "evil")}},
		{"absolute", []member{file("/x", "evil")}},
		{"hardlink outside", []member{hardlink("x", "../y")}},
	}
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dest := filepath.Join(root, "dest")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			err := Extract(NewReader(bytes.NewReader(rawTar(t, tc.members...)), Policy{Lenient: true}), dest)
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want an *EntryError", err)
			}
			assertOnly(t, root, "dest")
		})
	}
}

// assertOnly checks that dir holds exactly the named entry (nothing escaped).
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%s holds %v, want only %s", dir, names, name)
	}
}

func TestZstdDeterministic(t *testing.T) {
	data := bytes.Repeat([]byte("imagebuilder "), 100000)
	compress := func() []byte {
		var buf bytes.Buffer
		zw, err := NewCompressor(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a, b := compress(), compress()
	if !bytes.Equal(a, b) {
		t.Fatal("two compressions differ")
	}
	zr, err := NewDecompressor(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip failed: %v", err)
	}
}
