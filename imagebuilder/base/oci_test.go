package base

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"imagebuilder/distros"
	"imagebuilder/imagebuilder/disk"
	"imagebuilder/overlay"
)

func layerOf(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	data := tarBytes(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	must(t, err)
	return l
}

func imageOf(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	return img
}

func dirE(n string) tarEntry { return tarEntry{Name: n, Type: tar.TypeDir, Mode: 0o755} }

// bootcImage is a two-layer bootable image: the kernel only under
// /usr/lib/modules, and a second layer that deletes, replaces and hides.
func bootcImage(t *testing.T) v1.Image {
	return imageOf(t,
		layerOf(t, dirE("etc/"), tarEntry{Name: "etc/a", Body: "a"}, tarEntry{Name: "etc/b", Body: "b1"},
			tarEntry{Name: "usr/lib/os-release", Body: "ID=centos\nID_LIKE=\"rhel fedora\"\nVERSION_ID=9\n"},
			tarEntry{Name: "etc/os-release", Type: tar.TypeSymlink, Link: "../usr/lib/os-release"},
			dirE("dir/"), tarEntry{Name: "dir/x", Body: "x"}, dirE("dir/sub/"), tarEntry{Name: "dir/sub/y", Body: "y"},
			dirE("gone/"), tarEntry{Name: "gone/file", Body: "f"},
			dirE("opt/d/"), tarEntry{Name: "opt/d/f", Body: "f"},
			tarEntry{Name: "usr/lib/modules/5.14.0-427.el9.x86_64/vmlinuz", Body: "kernel", Mode: 0o755},
			tarEntry{Name: "usr/lib/modules/5.14.0-427.el9.x86_64/initramfs.img", Body: "initramfs", Mode: 0o600},
		),
		layerOf(t, tarEntry{Name: "etc/.wh.a"}, tarEntry{Name: "etc/b", Body: "b2"},
			dirE("dir/"), tarEntry{Name: "dir/.wh..wh..opq"}, tarEntry{Name: "dir/z", Body: "z"},
			tarEntry{Name: ".wh.gone"}, tarEntry{Name: "opt/d", Body: "now a file"},
			tarEntry{Name: "./newfile", Body: "new"},
		),
	)
}

// ociRefs writes img as an OCI layout, a docker archive and into an
// in-process registry on 127.0.0.1, and returns the three references.
func ociRefs(t *testing.T, img v1.Image) []string {
	t.Helper()
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	must(t, err)
	must(t, lp.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: "v1"})))
	tag, err := name.NewTag("imagebuilder/base:v1")
	must(t, err)
	archive := filepath.Join(dir, "docker.tar")
	must(t, tarball.WriteToFile(archive, tag, img))
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := name.ParseReference(host + "/base:v1")
	must(t, err)
	must(t, remote.Write(ref, img))
	return []string{"oci:" + filepath.Join(dir, "layout") + ":v1", "docker-archive:" + archive, "docker://" + host + "/base:v1"}
}

func TestOCIKindsFlattenAlike(t *testing.T) {
	img := bootcImage(t)
	cfg, err := img.ConfigName()
	must(t, err)
	ctx := context.Background()
	var want []string
	for _, ref := range ociRefs(t, img) {
		b, err := Open(ctx, ref, nil)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if b.Digest != cfg.String() {
			t.Errorf("%s: digest %s, want the config digest %s", ref, b.Digest, cfg)
		}
		m := manifestOf(t, b)
		if want == nil {
			want = m
			text := strings.Join(m, "\n")
			for _, gone := range []string{"/etc/a ", "/dir/x ", "/dir/sub", "/gone", "/opt/d/f"} {
				if strings.Contains(text, gone) {
					t.Errorf("%s survived the whiteouts:\n%s", gone, text)
				}
			}
			for _, kept := range []string{"/dir/z file", "/newfile file", "/opt/d file", "/etc/os-release symlink",
				"/usr/lib/modules/5.14.0-427.el9.x86_64/vmlinuz file 0755"} {
				if !strings.Contains(text, kept) {
					t.Errorf("%s missing:\n%s", kept, text)
				}
			}
		}
		sameManifest(t, ref, m, want)
	}
	// The flattened stream stages, and its contents are the upper layer's.
	b, err := Open(ctx, ociRefs(t, img)[0], nil)
	must(t, err)
	stage := filepath.Join(t.TempDir(), "root")
	must(t, os.Mkdir(stage, 0o755))
	tree := overlay.NewTree(stage)
	must(t, b.Apply(ctx, tree))
	if data, _ := tree.ReadFile("etc/b"); string(data) != "b2" {
		t.Errorf("etc/b = %q", data)
	}
	// Bootable (bootc-style): the RHEL profile links the kernel into /boot
	// and the disk writer finds it there.
	if _, err := distros.ExposeKernels(tree, distros.RHEL().InitrdName); err != nil {
		t.Fatal(err)
	}
	k, err := disk.FindKernel(tree)
	if err != nil {
		t.Fatalf("kernel of a bootc-style image: %v", err)
	}
	if k.Version != "5.14.0-427.el9.x86_64" || k.Initrd != "usr/lib/modules/5.14.0-427.el9.x86_64/initramfs.img" && k.Initrd != "boot/initramfs-5.14.0-427.el9.x86_64.img" {
		t.Errorf("kernel %+v", k)
	}
}

func TestOCILayoutNaming(t *testing.T) {
	img := bootcImage(t)
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	must(t, err)
	must(t, lp.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: "v1"})))
	ctx := context.Background()
	if _, err := Open(ctx, "oci:"+dir, nil); err != nil {
		t.Errorf("single image without a tag: %v", err)
	}
	if _, err := Open(ctx, "oci:"+dir+":v2", nil); err == nil || !strings.Contains(err.Error(), `has no image named "v2" (it has "v1")`) {
		t.Errorf("unknown tag: %v", err)
	}
	must(t, lp.AppendImage(imageOf(t, layerOf(t, tarEntry{Name: "x", Body: "x"})), layout.WithAnnotations(map[string]string{refNameAnnotation: "v2"})))
	if _, err := Open(ctx, "oci:"+dir, nil); err == nil || !strings.Contains(err.Error(), "holds 2 images") {
		t.Errorf("two images without a tag: %v", err)
	}
	if _, err := Open(ctx, "oci:"+dir+":v2", nil); err != nil {
		t.Errorf("tag v2: %v", err)
	}
}

// TestHostileOCILayer: an escaping entry in any layer is refused naming the
// layer and the entry, even when an upper layer whites it out.
func TestHostileOCILayer(t *testing.T) {
	cases := []struct {
		name  string
		entry tarEntry
		want  string
	}{
		{"dotdot path", tarEntry{Name: "etc/../../../etc/passwd", Body: "root::0:0"}, `tar entry "etc/../../../etc/passwd": ".." component refused`},
		{"absolute path", tarEntry{Name: "/etc/passwd", Body: "x"}, `tar entry "/etc/passwd": absolute path refused`},
		{"escaping symlink", tarEntry{Name: "lib/x", Type: tar.TypeSymlink, Link: "../../../../../root"}, `tar entry "lib/x": symlink target "../../../../../root" points outside the root`},
		{"escaping hardlink", tarEntry{Name: "lib/h", Type: tar.TypeLink, Link: "../../etc/shadow"}, `tar entry "lib/h": hardlink target "../../etc/shadow" refused`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := layerOf(t, dirE("lib/"), c.entry)
			diff, _ := bad.DiffID()
			img := imageOf(t, bad, layerOf(t, tarEntry{Name: ".wh.lib"}, tarEntry{Name: "ok", Body: "ok"}))
			for _, ref := range ociRefs(t, img) {
				b, err := Open(context.Background(), ref, nil)
				must(t, err)
				stage := filepath.Join(t.TempDir(), "root")
				must(t, os.Mkdir(stage, 0o755))
				err = b.Apply(context.Background(), overlay.NewTree(stage))
				var le *LayerError
				if err == nil || !errors.As(err, &le) || !strings.Contains(err.Error(), "layer 1 of 2 ("+diff.String()+"): "+c.want) {
					t.Fatalf("%s: err = %v\nwant %q", ref, err, c.want)
				}
				entries, _ := os.ReadDir(stage)
				if len(entries) != 0 {
					t.Errorf("%s: the stage got %d entries before the refusal", ref, len(entries))
				}
			}
		})
	}
}

// TestFlattenAcrossLayers: a hardlink to a lower layer's file stays a
// hardlink; an upper directory replaces a lower symlink of the same name.
func TestFlattenAcrossLayers(t *testing.T) {
	img := imageOf(t,
		layerOf(t, dirE("usr/bin/"), tarEntry{Name: "usr/bin/x", Body: "x", Mode: 0o755},
			tarEntry{Name: "lib", Type: tar.TypeSymlink, Link: "usr/lib"}),
		layerOf(t, tarEntry{Name: "usr/bin/y", Type: tar.TypeLink, Link: "usr/bin/x"},
			dirE("lib/"), tarEntry{Name: "lib/f", Body: "f"}),
	)
	b, err := imageBase(img)
	must(t, err)
	stage := filepath.Join(t.TempDir(), "root")
	must(t, os.Mkdir(stage, 0o755))
	tree := overlay.NewTree(stage)
	must(t, b.Apply(context.Background(), tree))
	if e, ok := tree.Lookup("usr/bin/y"); !ok || e.Kind != overlay.KindHardlink || e.Link != "usr/bin/x" {
		t.Errorf("usr/bin/y: %+v", e)
	}
	if e, ok := tree.Lookup("lib"); !ok || e.Kind != overlay.KindDir {
		t.Errorf("lib: %+v", e)
	}
	if data, err := tree.ReadFile("lib/f"); err != nil || string(data) != "f" {
		t.Errorf("lib/f: %q %v", data, err)
	}
}
