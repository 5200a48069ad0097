package disk

import (
	"strings"
	"testing"

	"imagebuilder/overlay"
)

func TestDfsQuote(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "/etc/passwd", want: `"/etc/passwd"`},
		{in: "/with space", want: `"/with space"`},
		{in: `/a"b`, want: `"/a""b"`},
		{in: `/end"`, want: `"/end"""`},
		{in: "/tab\there", want: "\"/tab\there\""},
		{in: "/new\nline", err: true},
		{in: "/carriage\rreturn", err: true},
		{in: "/nul\x00", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := dfsQuote(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("dfsQuote(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("dfsQuote(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestPlanFixups(t *testing.T) {
	const epoch = 1000
	file := func(perm uint32, uid, gid int) staged {
		return staged{Kind: overlay.KindFile, Perm: perm, UID: uid, GID: gid, Atime: epoch, Mtime: epoch, Ctime: epoch}
	}
	dir := func(perm uint32) staged {
		return staged{Kind: overlay.KindDir, Perm: perm, Atime: epoch, Mtime: epoch, Ctime: epoch}
	}
	root := &overlay.Entry{Path: "", Kind: overlay.KindDir, Mode: 0o755}
	rootLines := []string{
		`set_inode_field "/" mode 040755`,
		`set_inode_field "/" uid 0`,
		`set_inode_field "/" gid 0`,
	}
	for _, tc := range []struct {
		name    string
		entries []*overlay.Entry
		staged  map[string]staged
		want    []string // script lines after the root's
		err     string
	}{
		{
			name:    "unchanged file needs nothing",
			entries: []*overlay.Entry{{Path: "etc/hosts", Kind: overlay.KindFile, Mode: 0o644}},
			staged:  map[string]staged{"etc/hosts": file(0o644, 0, 0)},
		},
		{
			name:    "mode and owner differ",
			entries: []*overlay.Entry{{Path: "etc/shadow", Kind: overlay.KindFile, Mode: 0o640, GID: 42}},
			staged:  map[string]staged{"etc/shadow": file(0o644, 0, 0)},
			want:    []string{`set_inode_field "/etc/shadow" mode 0100640`, `set_inode_field "/etc/shadow" gid 42`},
		},
		{
			name:    "setuid, setgid and sticky bits",
			entries: []*overlay.Entry{{Path: "su", Kind: overlay.KindFile, Mode: 0o4755}, {Path: "tmp", Kind: overlay.KindDir, Mode: 0o1777}, {Path: "wall", Kind: overlay.KindFile, Mode: 0o2755, GID: 5}},
			staged:  map[string]staged{"su": file(0o755, 0, 0), "tmp": dir(0o755), "wall": file(0o755, 0, 0)},
			want: []string{
				`set_inode_field "/su" mode 0104755`,
				`set_inode_field "/tmp" mode 041777`,
				`set_inode_field "/wall" mode 0102755`,
				`set_inode_field "/wall" gid 5`,
			},
		},
		{
			name:    "large ids",
			entries: []*overlay.Entry{{Path: "f", Kind: overlay.KindFile, Mode: 0o600, UID: 100000, GID: 200000}},
			staged:  map[string]staged{"f": file(0o600, 0, 0)},
			want:    []string{`set_inode_field "/f" uid 100000`, `set_inode_field "/f" gid 200000`},
		},
		{
			name:    "symlink owner but never its mode",
			entries: []*overlay.Entry{{Path: "l", Kind: overlay.KindSymlink, Mode: 0o777, UID: 5, Link: "x"}},
			staged:  map[string]staged{"l": {Kind: overlay.KindSymlink, Perm: 0o777, Atime: epoch, Mtime: epoch, Ctime: epoch}},
			want:    []string{`set_inode_field "/l" uid 5`},
		},
		{
			name:    "hardlink leaves metadata to its target",
			entries: []*overlay.Entry{{Path: "a", Kind: overlay.KindFile, Mode: 0o4755}, {Path: "b", Kind: overlay.KindHardlink, Mode: 0o4755, Link: "a"}},
			staged:  map[string]staged{"a": file(0o755, 0, 0), "b": file(0o755, 0, 0)},
			want:    []string{`set_inode_field "/a" mode 0104755`},
		},
		{
			name:    "times are set to the epoch",
			entries: []*overlay.Entry{{Path: "f", Kind: overlay.KindFile, Mode: 0o644}},
			staged:  map[string]staged{"f": {Kind: overlay.KindFile, Perm: 0o644, Atime: 5, Mtime: epoch, Ctime: 7}},
			want:    []string{`set_inode_field "/f" atime @1000`, `set_inode_field "/f" ctime @1000`},
		},
		{
			name: "devices and fifos are made in their directory",
			entries: []*overlay.Entry{
				{Path: "dev", Kind: overlay.KindDir, Mode: 0o755},
				{Path: "dev/null", Kind: overlay.KindCharDev, Mode: 0o666, DevMajor: 1, DevMinor: 3},
				{Path: "dev/sda", Kind: overlay.KindBlockDev, Mode: 0o660, GID: 6, DevMajor: 8},
				{Path: "run/my pipe", Kind: overlay.KindFifo, Mode: 0o600, UID: 3},
				{Path: "run", Kind: overlay.KindDir, Mode: 0o755},
			},
			staged: map[string]staged{"dev": dir(0o755), "run": dir(0o755)},
			want: []string{
				`cd "/dev"`,
				`mknod "null" c 1 3`,
				`set_inode_field "/dev/null" mode 020666`,
				`set_inode_field "/dev/null" uid 0`,
				`set_inode_field "/dev/null" gid 0`,
				`mknod "sda" b 8 0`,
				`set_inode_field "/dev/sda" mode 060660`,
				`set_inode_field "/dev/sda" uid 0`,
				`set_inode_field "/dev/sda" gid 6`,
				`cd "/run"`,
				`mknod "my pipe" p`,
				`set_inode_field "/run/my pipe" mode 010600`,
				`set_inode_field "/run/my pipe" uid 3`,
				`set_inode_field "/run/my pipe" gid 0`,
				`cd "/"`,
			},
		},
		{
			name: "device numbers beyond debugfs's mknod range",
			entries: []*overlay.Entry{
				{Path: "big", Kind: overlay.KindCharDev, Mode: 0o600, DevMajor: 260, DevMinor: 300000},
			},
			want: []string{
				`mknod "big" c 0 0`,
				`set_inode_field "/big" block[1] 1227949280`,
				`set_inode_field "/big" mode 020600`,
				`set_inode_field "/big" uid 0`,
				`set_inode_field "/big" gid 0`,
			},
		},
		{
			name:    "device number too large for Linux",
			entries: []*overlay.Entry{{Path: "bad", Kind: overlay.KindBlockDev, DevMajor: 5000}},
			err:     "beyond Linux's 12-bit major",
		},
		{
			name: "xattrs set, kept and removed",
			entries: []*overlay.Entry{{Path: "ping", Kind: overlay.KindFile, Mode: 0o755, Xattrs: map[string][]byte{
				"security.capability": {1, 0, 0, 2}, "user.same": []byte("v"), "user.new": []byte("n"),
			}}},
			staged: map[string]staged{"ping": func() staged {
				s := file(0o755, 0, 0)
				s.Xattrs = map[string][]byte{"user.same": []byte("v"), "user.stale": []byte("x"), "security.capability": {9}}
				return s
			}()},
			want: []string{
				`ea_set -f "/blobs/0" "/ping" "security.capability"`,
				`ea_set -f "/blobs/1" "/ping" "user.new"`,
				`ea_rm "/ping" "user.stale"`,
			},
		},
		{
			name:    "quotes in paths",
			entries: []*overlay.Entry{{Path: `a"b c`, Kind: overlay.KindFile, Mode: 0o600}},
			staged:  map[string]staged{`a"b c`: file(0o644, 0, 0)},
			want:    []string{`set_inode_field "/a""b c" mode 0100600`},
		},
		{
			name:    "newline in a path is refused by name",
			entries: []*overlay.Entry{{Path: "bad\nname", Kind: overlay.KindFile, Mode: 0o600}},
			staged:  map[string]staged{"bad\nname": file(0o644, 0, 0)},
			err:     `"/bad\nname" cannot be expressed`,
		},
		{
			name:    "staged path without an entry",
			entries: nil,
			staged:  map[string]staged{"stray": file(0o644, 0, 0)},
			err:     "no entry for: /stray",
		},
		{
			name:    "entry missing from staging",
			entries: []*overlay.Entry{{Path: "gone", Kind: overlay.KindFile, Mode: 0o644}},
			staged:  map[string]staged{},
			err:     "file /gone is missing from the staging dir",
		},
		{
			name:    "kind mismatch",
			entries: []*overlay.Entry{{Path: "x", Kind: overlay.KindDir, Mode: 0o755}},
			staged:  map[string]staged{"x": file(0o644, 0, 0)},
			err:     "/x is a dir in the tree but a file in the staging dir",
		},
		{
			name:    "device with something staged at its path",
			entries: []*overlay.Entry{{Path: "null", Kind: overlay.KindCharDev, Mode: 0o666, DevMajor: 1, DevMinor: 3}},
			staged:  map[string]staged{"null": file(0o644, 0, 0)},
			err:     "/null is a chardev in the tree but a file is staged",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := map[string]staged{"": dir(0o700)}
			for k, v := range tc.staged {
				st[k] = v
			}
			fx, err := planFixups(append([]*overlay.Entry{root}, tc.entries...), st, epoch, "/blobs")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(string(fx.Script), "\n"), "\n")
			want := append(append([]string(nil), rootLines...), tc.want...)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("script:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if fx.Commands != len(want) {
				t.Errorf("Commands = %d, want %d", fx.Commands, len(want))
			}
		})
	}
}

func TestPlanFixupsBlobs(t *testing.T) {
	e := &overlay.Entry{Path: "f", Kind: overlay.KindFile, Mode: 0o644, Xattrs: map[string][]byte{"user.b": {0, 1, '\n', '"'}, "user.a": []byte("A")}}
	st := map[string]staged{
		"":  {Kind: overlay.KindDir, Perm: 0o755},
		"f": {Kind: overlay.KindFile, Perm: 0o644},
	}
	fx, err := planFixups([]*overlay.Entry{{Kind: overlay.KindDir, Mode: 0o755}, e}, st, 0, "/b")
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.Blobs) != 2 || string(fx.Blobs[0]) != "A" || string(fx.Blobs[1]) != "\x00\x01\n\"" {
		t.Fatalf("blobs = %q", fx.Blobs)
	}
}

func TestDebugfsErrors(t *testing.T) {
	stderr := []byte("debugfs 1.47.0 (5-Feb-2023)\n/nope: File not found by ext2_lookup \nsif: invalid field specifier: bogus\n")
	got := debugfsErrors(stderr)
	if len(got) != 2 || !strings.Contains(got[0], "File not found") {
		t.Fatalf("debugfsErrors = %q", got)
	}
	if got := debugfsErrors([]byte("debugfs 1.47.0 (5-Feb-2023)\n")); len(got) != 0 {
		t.Fatalf("banner alone reported as error: %q", got)
	}
}
