package installsh_test

import (
	"compress/gzip"
	"io"
	"os"
	"strings"
	"testing"

	"imagebuilder/genconf/installsh/hosttree"
	"imagebuilder/genconf/internal/testbundle"
	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/archive"
)

// imageSnapshot installs the bundle the way images get it
// (overlay.InstallBundle on a staged tree) and describes the result.
func imageSnapshot(t *testing.T, bundlePath, role string) hosttree.Snapshot {
	t.Helper()
	f, err := os.Open(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.ReadCloser
	if strings.HasSuffix(bundlePath, ".gz") {
		r, err = gzip.NewReader(f)
	} else {
		r, err = archive.NewDecompressor(f)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tree := overlay.NewTree(t.TempDir())
	if err := tree.InstallBundle(r, overlay.HostLayout{Prefix: prefix, Role: role}); err != nil {
		t.Fatal(err)
	}
	s, err := hosttree.FromTree(tree, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestInstallShEquivalentToImage: the tree under the prefix, the unit links
// and the role after install.sh are identical (paths, types, modes, link
// targets, sha256) to what overlay.InstallBundle gives an image for the same
// bundle — for both compressions, and again after an upgrade and a rollback.
func TestInstallShEquivalentToImage(t *testing.T) {
	for _, comp := range []string{"zstd", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			a := serve(t, testbundle.Options{Version: "1"}, configA+"bundle_compression: "+comp+"\n")
			b := serve(t, testbundle.Options{Version: "2", ExtraUnit: "app.service"}, configB+"bundle_compression: "+comp+"\n")
			root := fakeRoot(t)
			check := func(step, bundle string) {
				t.Helper()
				got, err := hosttree.FromDisk(root, prefix)
				if err != nil {
					t.Fatal(err)
				}
				want := imageSnapshot(t, bundle, "agent")
				if d := hosttree.Diff(want, got); len(d) > 0 {
					t.Errorf("%s: install.sh and the image differ (first: image, second: install.sh):\n  %s", step, strings.Join(d, "\n  "))
				}
				if len(got) < 30 {
					t.Errorf("%s: only %d paths compared", step, len(got))
				}
				if n := got["prefix/etc/secrets.env"]; n.Mode != 0o600 {
					t.Errorf("%s: secrets.env %v", step, n)
				}
				if n := got["prefix/etc/app/app.conf"]; n.Type != "file" {
					t.Errorf("%s: rendered template missing: %v", step, n)
				}
			}
			mustRun(t, a.InstallSh, "--root", root, "--role", "agent")
			check("install", a.Bundle)
			// Negative control: a changed mode is seen.
			conf := root + prefix + "/etc/app/app.conf"
			if err := os.Chmod(conf, 0o640); err != nil {
				t.Fatal(err)
			}
			if got, _ := hosttree.FromDisk(root, prefix); len(hosttree.Diff(imageSnapshot(t, a.Bundle, "agent"), got)) != 1 {
				t.Fatalf("the comparison does not see a changed mode")
			}
			if err := os.Chmod(conf, 0o644); err != nil {
				t.Fatal(err)
			}
			mustRun(t, b.InstallSh, "--root", root, "--upgrade")
			check("upgrade", b.Bundle)
			mustRun(t, b.InstallSh, "--root", root, "--rollback")
			check("rollback", a.Bundle)
		})
	}
}
