package genconf

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"imagebuilder/pkgbuild/archive"
	"imagebuilder/pkgbuild/bundle"
)

// Package templates. A package ships templates as files named *.tmpl under
// templates/ in its tree, so they sit in the bundle at
//
//	packages/<id>/templates/<rel>.tmpl
//
// genconf renders each with text/template (missingkey=error) and the data
// TemplateData returns, and writes the result into the cluster bundle at
//
//	etc/<package name>/<rel>        (the ".tmpl" dropped)
//
// with the template's mode, or 0600 when the output contains a secret. A
// template that names an unknown variable or function fails genconf with the
// template's bundle path and the variable. Files under templates/ without
// the .tmpl suffix are left alone (packages may keep partials there).
const (
	templatesDir    = "templates"
	templateSuffix  = ".tmpl"
	maxTemplateSize = 1 << 20
)

// TemplateData is what a template sees: the config's keys as config.yaml
// names them (durations in whole seconds), template_vars under .vars and
// secrets under .secrets.
func (r *Resolved) TemplateData() map[string]any {
	secrets := map[string]any{}
	for k, v := range r.Secrets {
		secrets[k] = v.Reveal()
	}
	vars := map[string]any{}
	for k, v := range r.TemplateVars {
		vars[k] = v
	}
	return map[string]any{
		"cluster_name":              r.ClusterName,
		"prefix":                    r.Prefix,
		"bootstrap_url":             r.BootstrapURL,
		"master_discovery":          r.MasterDiscovery,
		"master_list":               addrs(r.MasterList),
		"resolvers":                 addrs(r.Resolvers),
		"dns_search":                append([]string{}, r.DNSSearch...),
		"ntp_servers":               append([]string{}, r.NTPServers...),
		"ip_detect_timeout_seconds": int(r.IPDetectTimeout.Seconds()),
		"join_timeout_seconds":      int(r.JoinTimeout.Seconds()),
		"bundle_compression":        r.BundleCompression,
		"vars":                      vars,
		"secrets":                   secrets,
	}
}

// templateFuncs are the helpers templates may call besides the built-ins.
var templateFuncs = template.FuncMap{
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// TemplateError names the template that failed and, when the failure is an
// unknown variable or function, that name.
type TemplateError struct {
	Template string // bundle path, e.g. packages/app--1234/templates/app.conf.tmpl
	Variable string // the unknown variable or function; may be empty
	Line     string // "3:12" when known
	Err      error
}

func (e *TemplateError) Error() string {
	where := e.Template
	if e.Line != "" {
		where += ":" + e.Line
	}
	if e.Variable != "" {
		return fmt.Sprintf("template %s: unknown variable %q (known: %s)", where, e.Variable, strings.Join(knownTemplateVars(), ", "))
	}
	return fmt.Sprintf("template %s: %v", where, e.Err)
}

func (e *TemplateError) Unwrap() error { return e.Err }

func knownTemplateVars() []string {
	return sortedKeys((&Resolved{}).TemplateData())
}

var (
	missingKeyRE = regexp.MustCompile(`map has no entry for key "([^"]*)"`)
	noFuncRE     = regexp.MustCompile(`function "([^"]*)" not defined`)
	lineRE       = regexp.MustCompile(`^template: [^:]*:(\d+(?::\d+)?)`)
)

func templateError(name string, err error) *TemplateError {
	te := &TemplateError{Template: name, Err: err}
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		te.Line = m[1]
	}
	if m := missingKeyRE.FindStringSubmatch(msg); m != nil {
		te.Variable = m[1]
		// Name the full path the template used (".vars.x"), when shown.
		if i := strings.Index(msg, "at <"); i >= 0 {
			if j := strings.Index(msg[i:], ">"); j > 0 {
				te.Variable = msg[i+4 : i+j]
			}
		}
	} else if m := noFuncRE.FindStringSubmatch(msg); m != nil {
		te.Variable = m[1]
	}
	return te
}

// renderTemplates finds the package templates in the base bundle and renders
// them with the config. The result is sorted by path.
func renderTemplates(cfg *Resolved, baseBundle string, m *bundle.Manifest) ([]File, error) {
	names := map[string]string{} // package id -> name
	for _, p := range m.Packages {
		names[p.ID] = p.Name
	}
	type tmpl struct {
		entry bundle.Entry
		pkg   string
		rel   string
	}
	var want []tmpl
	for _, e := range m.Entries {
		id, rel, ok := templatePath(e.Path)
		if !ok || (e.Type != "file" && e.Type != "hardlink") {
			continue
		}
		name, ok := names[id]
		if !ok {
			return nil, fmt.Errorf("template %s: package %s is not in the manifest's package list", e.Path, id)
		}
		if e.Size > maxTemplateSize {
			return nil, fmt.Errorf("template %s: %d bytes is more than %d", e.Path, e.Size, maxTemplateSize)
		}
		want = append(want, tmpl{entry: e, pkg: name, rel: rel})
	}
	if len(want) == 0 {
		return nil, nil
	}
	contents, err := readTemplateFiles(baseBundle, m)
	if err != nil {
		return nil, err
	}
	data := cfg.TemplateData()
	var out []File
	for _, w := range want {
		src, ok := contents[w.entry.SHA256]
		if !ok {
			return nil, fmt.Errorf("template %s: not found in the bundle stream", w.entry.Path)
		}
		t, err := template.New(w.entry.Path).Option("missingkey=error").Funcs(templateFuncs).Parse(string(src))
		if err != nil {
			return nil, templateError(w.entry.Path, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, templateError(w.entry.Path, err)
		}
		mode := uint32(w.entry.Mode) & 0o755
		for _, v := range cfg.Secrets {
			if bytes.Contains(b.Bytes(), []byte(v.Reveal())) {
				mode = 0o600
			}
		}
		out = append(out, File{Path: path.Join("etc", w.pkg, strings.TrimSuffix(w.rel, templateSuffix)), Mode: mode, Data: b.Bytes()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// templatePath splits packages/<id>/templates/<rel>.tmpl.
func templatePath(p string) (id, rel string, ok bool) {
	rest, ok := strings.CutPrefix(p, "packages/")
	if !ok {
		return "", "", false
	}
	id, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	rel, ok = strings.CutPrefix(rest, templatesDir+"/")
	if !ok || !strings.HasSuffix(rel, templateSuffix) || rel == templateSuffix || strings.HasSuffix(rel, "/"+templateSuffix) {
		return "", "", false
	}
	return id, rel, true
}

// readTemplateFiles returns the contents of the bundle's template files by
// sha256, checked against the manifest.
func readTemplateFiles(baseBundle string, m *bundle.Manifest) (map[string][]byte, error) {
	want := map[string]bool{}
	for _, e := range m.Entries {
		if _, _, ok := templatePath(e.Path); ok && e.SHA256 != "" {
			want[e.SHA256] = true
		}
	}
	f, err := os.Open(baseBundle)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := archive.NewDecompressor(f)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading bundle %s: %w", baseBundle, err)
		}
		if _, _, ok := templatePath(hdr.Name); !ok || hdr.Typeflag != tar.TypeReg || hdr.Size > maxTemplateSize {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s from the bundle: %w", hdr.Name, err)
		}
		sum := sha256.Sum256(data)
		s := hex.EncodeToString(sum[:])
		if !want[s] {
			return nil, fmt.Errorf("bundle %s: %s does not match manifest.json", baseBundle, hdr.Name)
		}
		out[s] = data
	}
}
