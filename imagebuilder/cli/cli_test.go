package cli

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the CLI in-process and returns exit code, stdout, stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(strings.NewReader(""), &out, &errb, args)
	return code, out.String(), errb.String()
}

func writeTar(t *testing.T, p string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// noArtifacts fails when dir holds anything but hidden temp names or nothing.
func noArtifacts(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("artifact left after a failed run: %s", filepath.Join(dir, e.Name()))
	}
}

func TestHelpTeachesWithExamples(t *testing.T) {
	for _, cmd := range [][]string{{"build"}, {"genconf"}, {"boot"}, {"pkg"}, {"pkg", "build"}} {
		code, out, _ := run(t, append(cmd, "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "imagebuilder "+cmd[0]) {
			t.Errorf("%v --help: code %d, no example:\n%s", cmd, code, out)
		}
	}
}

func TestBadInputIsAClearError(t *testing.T) {
	dir := t.TempDir()
	alpine := filepath.Join(dir, "alpine.tar")
	writeTar(t, alpine, map[string]string{"etc/os-release": "PRETTY_NAME=\"Alpine Linux v3.19\"\nID=alpine\nVERSION_ID=3.19.0\n"})
	bundleNoConfig := filepath.Join(dir, "bundle.tar")
	writeTar(t, bundleNoConfig, map[string]string{"manifest.json": `{"prefix":"/opt/cluster"}`})
	bundleOK := filepath.Join(dir, "cb.tar")
	writeTar(t, bundleOK, map[string]string{"manifest.json": `{"prefix":"/opt/cluster"}`, "etc/cluster.env": "CLUSTER_PREFIX=/opt/cluster\n",
		"systemd/cluster.target": "[Unit]\n"})
	badCfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(badCfg, []byte("cluster_name: demo\nmaster_list: [10.0.0.1, 300.1.1.1]\nextra: 1\n"), 0o644)
	twoLines := filepath.Join(dir, "two", "config.yaml")
	os.MkdirAll(filepath.Dir(twoLines), 0o755)
	os.WriteFile(twoLines, []byte("cluster_name: demo\nmaster_list: [10.0.0.1]\nip_detect_path: nope\n"), 0o644)

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing base", []string{"build", "--base", filepath.Join(dir, "nothere.tar"), "--bundle", bundleOK, "--out", "OUT"},
			[]string{"base ", "nothere.tar", "no such file"}},
		{"unknown distro", []string{"build", "--base", alpine, "--bundle", bundleOK, "--out", "OUT"},
			[]string{"unsupported base distribution \"Alpine Linux v3.19\"", "supported families: debian"}},
		{"bundle without config", []string{"build", "--base", alpine, "--bundle", bundleNoConfig, "--out", "OUT"},
			[]string{"no etc/cluster.env", "imagebuilder genconf"}},
		{"bad role", []string{"build", "--base", alpine, "--bundle", bundleOK, "--role", "boss", "--out", "OUT"},
			[]string{`role "boss"`}},
		{"malformed config", []string{"genconf", "--config", badCfg, "--check"},
			[]string{"master_list[1]: \"300.1.1.1\" is not an IP", "extra: line 3: unknown key"}},
		{"missing ip-detect", []string{"genconf", "--config", twoLines, "--check"},
			[]string{"ip_detect_path: cannot read the ip-detect script"}},
		{"boot missing image", []string{"boot", filepath.Join(dir, "none.qcow2"), "--accel", "tcg"},
			[]string{"none.qcow2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string(nil), c.args...)
			for i, a := range args {
				if a == "OUT" {
					args[i] = out
				}
			}
			code, _, stderr := run(t, args...)
			if code == 0 {
				t.Fatalf("exit 0 for bad input")
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			noArtifacts(t, out)
		})
	}
}

func TestFailingPackageBuildNamesPackageAndLog(t *testing.T) {
	repo := t.TempDir()
	pkg := filepath.Join(repo, "packages", "broken")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "buildinfo.json"), []byte(`{"sources": {}}`), 0o644)
	os.WriteFile(filepath.Join(pkg, "build"), []byte("#!/bin/bash\necho compiling\necho 'error: widget.c:3: syntax error' >&2\nexit 7\n"), 0o755)
	out := filepath.Join(t.TempDir(), "bundle.tar.zst")
	code, _, stderr := run(t, "pkg", "build", "--repo", repo, "--packages", filepath.Join(repo, "packages"),
		"--store", filepath.Join(t.TempDir(), "store"), "--out", out)
	if code == 0 {
		t.Fatal("exit 0 for a failing build")
	}
	for _, w := range []string{"broken", "exit status 7", "widget.c:3: syntax error", ".log"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("bundle written although a package failed")
	}
}
