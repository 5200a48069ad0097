// Package testbundle makes small, real base bundles for genconf's and
// install.sh's tests: a "firstboot" package with the cluster units and an
// "app" package with a template, a hardlink, a symlink and a private file.
// Everything goes through pkgbuild's archive writer and bundle.Assemble, so
// the bundles are the kind `imagebuilder pkg build` makes.
package testbundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"imagebuilder/pkgbuild/archive"
	"imagebuilder/pkgbuild/bundle"
)

// Options vary the bundle, so tests get an old and a new one.
type Options struct {
	Prefix string // default /opt/cluster
	// Version is baked into the packages' files; a different version gives
	// different package ids and contents.
	Version string
	// ExtraUnit, when set, is one more unit the app package ships (so the
	// unit set differs between two bundles).
	ExtraUnit string
	// Template is the app's templates/app.conf.tmpl; empty uses a default
	// that names cluster_name, master_list and .vars.greeting.
	Template string
	// Padding adds a file of this many pseudo-random bytes (slower extraction,
	// for fault injection).
	Padding int
}

// DefaultTemplate is the app's template unless Options.Template is set.
const DefaultTemplate = "cluster = {{.cluster_name}}\nmasters = {{join .master_list \",\"}}\ngreeting = {{.vars.greeting}}\n"

type member struct {
	e    archive.Entry
	data string
}

func dir(n string) member {
	return member{e: archive.Entry{Name: n, Type: archive.TypeDir, Mode: 0o755}}
}
func file(n string, mode fs.FileMode, data string) member {
	return member{e: archive.Entry{Name: n, Type: archive.TypeFile, Mode: mode, Size: int64(len(data))}, data: data}
}

func writePackage(outDir, name string, ms []member) (bundle.Package, error) {
	sort.Slice(ms, func(i, j int) bool { return archive.Less(ms[i].e.Name, ms[j].e.Name) })
	var tarBuf bytes.Buffer
	w := archive.NewWriter(&tarBuf, 0)
	for _, m := range ms {
		if err := w.Add(m.e, strings.NewReader(m.data)); err != nil {
			return bundle.Package{}, err
		}
	}
	if err := w.Close(); err != nil {
		return bundle.Package{}, err
	}
	var out bytes.Buffer
	zw, err := archive.NewCompressor(&out)
	if err != nil {
		return bundle.Package{}, err
	}
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return bundle.Package{}, err
	}
	if err := zw.Close(); err != nil {
		return bundle.Package{}, err
	}
	sum := sha256.Sum256(out.Bytes())
	id := name + "--" + hex.EncodeToString(sum[:])[:16]
	p := filepath.Join(outDir, id+".tar.zst")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		return bundle.Package{}, err
	}
	return bundle.Package{Name: name, ID: id, Tarball: p, SHA256: hex.EncodeToString(sum[:])}, nil
}

// Base writes a base bundle (no cluster config yet) into dir and returns its path.
func Base(outDir string, o Options) (string, error) {
	if o.Prefix == "" {
		o.Prefix = "/opt/cluster"
	}
	if o.Version == "" {
		o.Version = "1"
	}
	if o.Template == "" {
		o.Template = DefaultTemplate
	}
	unit := func(desc string) string {
		return "[Unit]\nDescription=" + desc + "\n\n[Service]\nType=oneshot\nExecStart=" + o.Prefix + "/bin/cluster-firstboot " + desc + "\n"
	}
	fb, err := writePackage(outDir, "firstboot", []member{
		dir("bin"),
		file("bin/cluster-firstboot", 0o755, "#!/bin/sh\n# firstboot stand-in, version "+o.Version+"\necho cluster-firstboot \"$@\"\n"),
		dir("systemd"),
		file("systemd/cluster-firstboot.service", 0o644, unit("join")),
		file("systemd/cluster-ipdetect.service", 0o644, unit("ipdetect")),
		file("systemd/cluster.target", 0o644, "[Unit]\nDescription=Cluster host\nWants=cluster-ipdetect.service cluster-firstboot.service\n"),
	})
	if err != nil {
		return "", fmt.Errorf("firstboot package: %w", err)
	}
	fb.Units = map[string][]string{"cluster-firstboot.service": {"master", "agent", "agent_public"}}
	appFiles := []member{
		dir("bin"),
		file("bin/app", 0o755, "#!/bin/sh\necho app "+o.Version+"\n"),
		dir("lib"),
		file("lib/data.txt", 0o644, strings.Repeat("data "+o.Version+"\n", 100)),
		{e: archive.Entry{Name: "lib/data.txt.link", Type: archive.TypeHardlink, Mode: 0o644, Linkname: "lib/data.txt"}},
		{e: archive.Entry{Name: "lib/current", Type: archive.TypeSymlink, Mode: 0o777, Linkname: "data.txt"}},
		file("lib/private.key", 0o600, "not really a key "+o.Version+"\n"),
		dir("templates"),
		file("templates/app.conf.tmpl", 0o644, o.Template),
		file("templates/README", 0o644, "not a template: no .tmpl suffix\n"),
	}
	if o.Padding > 0 {
		appFiles = append(appFiles, file("lib/padding.bin", 0o644, padding(o.Padding, o.Version)))
	}
	if o.ExtraUnit != "" {
		appFiles = append(appFiles, dir("systemd"), file("systemd/"+o.ExtraUnit, 0o644, unit("app")),
			// a system user and its state folder, as pkgbuild writes them
			dir("sysusers.d"), file("sysusers.d/app.conf", 0o644, "u app - \"app\" /var/lib/app\n"),
			dir("tmpfiles.d"), file("tmpfiles.d/app.conf", 0o644, "d /var/lib/app 0750 app app -\n"))
	}
	app, err := writePackage(outDir, "app", appFiles)
	if err != nil {
		return "", fmt.Errorf("app package: %w", err)
	}
	if o.ExtraUnit != "" {
		app.Units = map[string][]string{o.ExtraUnit: {"master"}}
	}
	p, _, _, err := bundle.AssembleFile(outDir, bundle.Input{Prefix: o.Prefix, Packages: []bundle.Package{app, fb}})
	return p, err
}

// padding is incompressible-ish deterministic data.
func padding(n int, seed string) string {
	var b bytes.Buffer
	h := sha256.Sum256([]byte(seed))
	for b.Len() < n {
		h = sha256.Sum256(h[:])
		b.Write(h[:])
	}
	return b.String()[:n]
}
