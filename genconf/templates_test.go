package genconf

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/genconf/internal/testbundle"
	"imagebuilder/pkgbuild/archive"
	"imagebuilder/pkgbuild/bundle"
)

const testToken = "tok-0123456789abcdef-SECRET"

// writeConfig writes config.yaml (plus ip-detect and a token file) into a
// fresh folder and loads it.
func writeConfig(t *testing.T, yaml string) *Resolved {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "ip-detect"), []byte("#!/bin/sh\necho 10.0.0.1\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "token.txt"), []byte(testToken+"\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(yaml), 0o644))
	cfg, err := Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// bundleFiles lists a zstd or gzip cluster bundle: path -> (mode, data).
func bundleFiles(t *testing.T, p string) map[string]struct {
	mode os.FileMode
	data string
} {
	t.Helper()
	raw, err := os.ReadFile(p)
	must(t, err)
	var tarData []byte
	if strings.HasSuffix(p, ".gz") {
		tarData = gunzip(t, raw)
	} else {
		zr, err := archive.NewDecompressor(bytes.NewReader(raw))
		must(t, err)
		var b bytes.Buffer
		_, err = b.ReadFrom(zr)
		must(t, err)
		tarData = b.Bytes()
	}
	out := map[string]struct {
		mode os.FileMode
		data string
	}{}
	rd := archive.NewReader(bytes.NewReader(tarData), archive.Policy{})
	for {
		e, err := rd.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		if e.Type == archive.TypeFile {
			_, err := b.ReadFrom(rd)
			must(t, err)
		}
		out[e.Name] = struct {
			mode os.FileMode
			data string
		}{e.Mode, b.String()}
	}
	return out
}

func TestTemplatesRenderedIntoBundle(t *testing.T) {
	base, err := testbundle.Base(t.TempDir(), testbundle.Options{
		Template: testbundle.DefaultTemplate + "token = {{.secrets.join_token}}\n",
	})
	must(t, err)
	cfg := writeConfig(t, "cluster_name: c1\nmaster_list: [10.0.0.1, 10.0.0.2, 10.0.0.3]\ntemplate_vars: {greeting: hello}\nsecrets: {join_token: {file: token.txt}}\n")
	out, err := Generate(slog.New(slog.DiscardHandler), cfg, base, t.TempDir())
	must(t, err)
	files := bundleFiles(t, out.Bundle)
	conf, ok := files["etc/app/app.conf"]
	if !ok {
		t.Fatalf("etc/app/app.conf not in the bundle; templates: %v", out.Templates)
	}
	want := "cluster = c1\nmasters = 10.0.0.1,10.0.0.2,10.0.0.3\ngreeting = hello\ntoken = " + testToken + "\n"
	if conf.data != want {
		t.Errorf("etc/app/app.conf = %q, want %q", conf.data, want)
	}
	if conf.mode != 0o600 {
		t.Errorf("a rendered file holding a secret has mode %04o, want 0600", conf.mode)
	}
	if _, ok := files["etc/app/README"]; ok {
		t.Errorf("a file without .tmpl was rendered")
	}
}

func TestTemplateUnknownVariableFails(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl, variable string
	}{
		{"top-level", "x = {{.cluster_nmae}}\n", ".cluster_nmae"},
		{"vars", "x = {{.vars.missing}}\n", ".vars.missing"},
		{"function", "x = {{shout .cluster_name}}\n", "shout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, err := testbundle.Base(t.TempDir(), testbundle.Options{Template: tc.tmpl})
			must(t, err)
			cfg := writeConfig(t, "cluster_name: c1\nmaster_list: [10.0.0.1]\n")
			outDir := t.TempDir()
			_, err = Generate(slog.New(slog.DiscardHandler), cfg, base, outDir)
			var te *TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("want a TemplateError, got %v", err)
			}
			if !strings.HasPrefix(te.Template, "packages/app--") || !strings.HasSuffix(te.Template, "/templates/app.conf.tmpl") {
				t.Errorf("error names template %q", te.Template)
			}
			if te.Variable != tc.variable || !strings.Contains(err.Error(), tc.variable) {
				t.Errorf("error names variable %q, want %q: %v", te.Variable, tc.variable, err)
			}
			if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
				t.Errorf("files written although a template failed: %v", ents)
			}
		})
	}
}

func TestGenerateDeterministicWithTemplatesAndGzip(t *testing.T) {
	base, err := testbundle.Base(t.TempDir(), testbundle.Options{})
	must(t, err)
	for _, comp := range []string{"zstd", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			yaml := "cluster_name: c1\nmaster_list: [10.0.0.1]\ntemplate_vars: {greeting: hi}\nbundle_compression: " + comp + "\n"
			var outs []*Output
			for i := 0; i < 2; i++ {
				o, err := Generate(slog.New(slog.DiscardHandler), writeConfig(t, yaml), base, t.TempDir())
				must(t, err)
				outs = append(outs, o)
			}
			if outs[0].BundleSHA256 != outs[1].BundleSHA256 {
				t.Errorf("same config and bundle gave digests %s and %s", outs[0].BundleSHA256, outs[1].BundleSHA256)
			}
			a, _ := os.ReadFile(outs[0].InstallSh)
			b, _ := os.ReadFile(outs[1].InstallSh)
			if !bytes.Equal(a, b) || !bytes.Contains(a, []byte("BUNDLE_SHA256='"+outs[0].BundleSHA256+"'")) {
				t.Errorf("install.sh differs between runs or lacks the bundle's sha256")
			}
			wantExt := map[string]string{"zstd": ".tar.zst", "gzip": ".tar.gz"}[comp]
			if !strings.HasSuffix(outs[0].Bundle, wantExt) {
				t.Errorf("bundle %s, want suffix %s", outs[0].Bundle, wantExt)
			}
			if files := bundleFiles(t, outs[0].Bundle); files["etc/app/app.conf"].data == "" {
				t.Errorf("rendered template missing from the %s bundle", comp)
			}
			sums, _ := os.ReadFile(outs[0].SHA256Sums)
			if !bytes.Contains(sums, []byte(outs[0].BundleSHA256+"  "+filepath.Base(outs[0].Bundle))) || !bytes.Contains(sums, []byte("  install.sh\n")) {
				t.Errorf("SHA256SUMS = %s", sums)
			}
		})
	}
	// A different template variable changes the digest.
	o1, err := Generate(slog.New(slog.DiscardHandler), writeConfig(t, "cluster_name: c1\nmaster_list: [10.0.0.1]\ntemplate_vars: {greeting: a}\n"), base, t.TempDir())
	must(t, err)
	o2, err := Generate(slog.New(slog.DiscardHandler), writeConfig(t, "cluster_name: c1\nmaster_list: [10.0.0.1]\ntemplate_vars: {greeting: b}\n"), base, t.TempDir())
	must(t, err)
	if o1.BundleSHA256 == o2.BundleSHA256 {
		t.Errorf("a changed template variable did not change the bundle digest")
	}
}

// TestSecretsStayPrivate: the secret is in etc/secrets.env (0600) and in no
// log line, summary, SHA256SUMS, install.sh or JSON output; the bundle file
// is 0600.
func TestSecretsStayPrivate(t *testing.T) {
	base, err := testbundle.Base(t.TempDir(), testbundle.Options{})
	must(t, err)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := writeConfig(t, "cluster_name: c1\nmaster_list: [10.0.0.1]\ntemplate_vars: {greeting: hi}\nsecrets:\n  join_token: {file: token.txt}\n  literal_password: "+testToken+"-2\n")
	log.Debug("resolved config", "config", cfg, "secrets", cfg.Secrets, "one", cfg.Secrets["join_token"])
	out, err := Generate(log, cfg, base, t.TempDir())
	must(t, err)
	files := bundleFiles(t, out.Bundle)
	sec, ok := files[SecretsPath]
	if !ok {
		t.Fatalf("%s not in the bundle", SecretsPath)
	}
	if sec.mode != 0o600 {
		t.Errorf("%s mode %04o in the bundle, want 0600", SecretsPath, sec.mode)
	}
	if !strings.Contains(sec.data, `JOIN_TOKEN="`+testToken+`"`) || !strings.Contains(sec.data, `LITERAL_PASSWORD="`+testToken+`-2"`) {
		t.Errorf("%s = %q", SecretsPath, sec.data)
	}
	for p, f := range files {
		if p != SecretsPath && strings.Contains(f.data, testToken) && f.mode != 0o600 {
			t.Errorf("%s holds the secret with mode %04o", p, f.mode)
		}
	}
	if !strings.Contains(files["etc/cluster.env"].data, "SECRETS_FILE=/opt/cluster/etc/secrets.env") {
		t.Errorf("cluster.env does not name the secrets file")
	}
	fi, err := os.Stat(out.Bundle)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("bundle with secrets has mode %04o, want 0600", fi.Mode().Perm())
	}
	jsonOut := new(bytes.Buffer)
	must(t, jsonEncode(jsonOut, cfg))
	for name, data := range map[string][]byte{
		"log": logs.Bytes(), "summary": readFile(t, out.Summary), "SHA256SUMS": readFile(t, out.SHA256Sums),
		"install.sh": readFile(t, out.InstallSh), "json of the config": jsonOut.Bytes(),
	} {
		if bytes.Contains(data, []byte(testToken)) {
			t.Errorf("%s shows the secret:\n%s", name, data)
		}
	}
	if !bytes.Contains(readFile(t, out.Summary), []byte("join_token, literal_password (values redacted")) {
		t.Errorf("summary does not list the secrets by name:\n%s", readFile(t, out.Summary))
	}
	if !bytes.Contains(logs.Bytes(), []byte(`"one":"[redacted]"`)) {
		t.Errorf("log did not redact the secret: %s", logs.Bytes())
	}
	m, err := readManifest(out.Bundle)
	must(t, err)
	if e, ok := m.Lookup(SecretsPath); !ok || e.Mode != bundle.Mode(0o600) {
		t.Errorf("manifest entry for %s: %+v", SecretsPath, e)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}
