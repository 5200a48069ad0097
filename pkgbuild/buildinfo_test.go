package pkgbuild

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const okSHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestLoadDefinitionRefuses(t *testing.T) {
	tests := []struct {
		name      string
		buildinfo string
		files     map[string]string
		wants     []string
	}{
		{"unknown field", `{"sorces": {}}`, nil, []string{`unknown field "sorces"`}},
		{"unknown source field", `{"sources": {"s": {"kind": "dir", "path": "src", "sha": "x"}}}`, map[string]string{"src/f": "x"}, []string{`unknown field "sha"`}},
		{"trailing data", `{} {}`, nil, []string{"trailing data"}},
		{"url without sha256", `{"sources": {"s": {"kind": "url", "url": "http://127.0.0.1/x"}}}`, nil, []string{"sources.s.sha256"}},
		{"url_extract bad sha256", `{"sources": {"s": {"kind": "url_extract", "url": "http://127.0.0.1/x", "sha256": "` + strings.ToUpper(okSHA) + `"}}}`, nil, []string{"sources.s.sha256"}},
		{"url without url", `{"sources": {"s": {"kind": "url", "sha256": "` + okSHA + `"}}}`, nil, []string{"sources.s.url"}},
		{"git without commit", `{"sources": {"s": {"kind": "git", "url": "http://127.0.0.1/x.git"}}}`, nil, []string{"sources.s.commit"}},
		{"git with a branch", `{"sources": {"s": {"kind": "git", "url": "http://127.0.0.1/x.git", "commit": "main"}}}`, nil, []string{"sources.s.commit", "40 lowercase hex", "main"}},
		{"git short commit", `{"sources": {"s": {"kind": "git", "url": "/x", "commit": "abcdef1"}}}`, nil, []string{"sources.s.commit"}},
		{"unknown kind", `{"sources": {"s": {"kind": "svn"}}}`, nil, []string{"sources.s.kind", "svn"}},
		{"field of another kind", `{"sources": {"s": {"kind": "dir", "path": "src", "url": "http://x"}}}`, map[string]string{"src/f": "x"}, []string{"sources.s.url", "not used"}},
		{"dir escapes", `{"sources": {"s": {"kind": "dir", "path": "../../.."}}}`, nil, []string{"sources.s.path", "outside the repository"}},
		{"dir absolute", `{"sources": {"s": {"kind": "dir", "path": "/etc"}}}`, nil, []string{"sources.s.path", "relative"}},
		{"dir missing", `{"sources": {"s": {"kind": "dir", "path": "nope"}}}`, nil, []string{"sources.s.path", "does not exist"}},
		{"dir is a file", `{"sources": {"s": {"kind": "dir", "path": "f"}}}`, map[string]string{"f": "x"}, []string{"not a directory"}},
		{"bad source name", `{"sources": {"a/b": {"kind": "dir", "path": "src"}}}`, map[string]string{"src/f": "x"}, []string{"sources.a/b"}},
		{"requires itself", `{"requires": ["p"]}`, nil, []string{"requires[0]", "itself"}},
		{"requires twice", `{"requires": ["q", "q"]}`, nil, []string{"requires[1]"}},
		{"reserved env", `{"environment": {"OUT": "/x"}}`, nil, []string{"environment.OUT"}},
		{"require path env", `{"requires": ["q"], "environment": {"Q_PATH": "/x"}}`, nil, []string{"environment.Q_PATH"}},
		{"bad role", `{"units": {"p.service": ["worker"]}}`, nil, []string{"units.p.service[0]", "worker"}},
		{"bad unit name", `{"units": {"p.conf": ["master"]}}`, nil, []string{"units.p.conf"}},
		{"bad user", `{"username": ["Root Admin"]}`, nil, []string{"username[0]"}},
		{"all problems at once", `{"sources": {"a": {"kind": "url"}}, "units": {"x.service": ["nobody"]}}`, nil, []string{"sources.a.url", "sources.a.sha256", "units.x.service[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.pkg("p", tc.buildinfo, "true\n", tc.files)
			_, err := LoadDefinition(r.root, filepath.Join(r.root, "packages"), "p")
			if err == nil {
				t.Fatal("accepted")
			}
			file := filepath.Join(r.root, "packages", "p", "buildinfo.json")
			if !strings.Contains(err.Error(), file) {
				t.Errorf("error %q does not name %s", err, file)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadDefinitionSymlinkEscape(t *testing.T) {
	r := newRepo(t)
	r.pkg("p", `{"sources": {"s": {"kind": "dir", "path": "link"}}}`, "true\n", nil)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(r.root, "packages", "p", "link")); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDefinition(r.root, filepath.Join(r.root, "packages"), "p")
	if err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Fatalf("got %v, want a refusal of the escaping symlink", err)
	}
}

func TestLoadDefinitionAccepts(t *testing.T) {
	r := newRepo(t)
	r.write(filepath.Join(r.root, "firstboot", "main.go"), "package main\n", 0o644)
	r.pkg("firstboot", `{
  "sources": {"src": {"kind": "dir", "path": "../../firstboot"}, "tool": {"kind": "url", "url": "http://127.0.0.1/t", "sha256": "`+okSHA+`"}},
  "environment": {"GOFLAGS": "-mod=mod"},
  "network": false, "state_directory": true, "username": ["cluster"],
  "units": {"cluster-firstboot.service": ["master", "agent", "agent_public"]}
}`, "true\n", nil)
	d, err := LoadDefinition(r.root, filepath.Join(r.root, "packages"), "firstboot")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(filepath.Join(r.root, "firstboot"))
	if d.DirSources["src"] != want {
		t.Errorf("dir source resolved to %q, want %q", d.DirSources["src"], want)
	}
	if !d.Info.StateDirectory || d.Info.Username[0] != "cluster" || string(d.Script) != "true\n" {
		t.Errorf("definition: %+v", d)
	}
}

func TestLoadSet(t *testing.T) {
	t.Run("missing requirement", func(t *testing.T) {
		r := newRepo(t)
		r.pkg("app", `{"requires": ["lib"]}`, "true\n", nil)
		_, err := LoadSet(r.root, filepath.Join(r.root, "packages"), "app")
		if err == nil || !strings.Contains(err.Error(), "package app requires lib, which does not exist") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cycle", func(t *testing.T) {
		r := newRepo(t)
		r.pkg("a", `{"requires": ["b"]}`, "true\n", nil)
		r.pkg("b", `{"requires": ["c"]}`, "true\n", nil)
		r.pkg("c", `{"requires": ["a"]}`, "true\n", nil)
		r.pkg("d", `{}`, "true\n", nil)
		_, err := LoadSet(r.root, filepath.Join(r.root, "packages"))
		if err == nil || !strings.Contains(err.Error(), "dependency cycle: a -> b -> c -> a") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("errors of several packages together", func(t *testing.T) {
		r := newRepo(t)
		r.pkg("a", `{"bad": 1}`, "true\n", nil)
		r.pkg("b", `{"worse": 1}`, "true\n", nil)
		_, err := LoadSet(r.root, filepath.Join(r.root, "packages"))
		var de *DefinitionError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), `"worse"`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("order", func(t *testing.T) {
		r := newRepo(t)
		r.pkg("top", `{"requires": ["left", "right"]}`, "true\n", nil)
		r.pkg("left", `{"requires": ["base"]}`, "true\n", nil)
		r.pkg("right", `{"requires": ["base"]}`, "true\n", nil)
		r.pkg("base", `{}`, "true\n", nil)
		r.pkg("unrelated", `{}`, "true\n", nil)
		s, err := LoadSet(r.root, filepath.Join(r.root, "packages"), "top")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(s.Order, " "); got != "base left right top" {
			t.Errorf("order %q", got)
		}
		if got := strings.Join(s.closure("top"), " "); got != "base left right" {
			t.Errorf("closure %q", got)
		}
	})
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"join-check": "JOIN_CHECK_PATH", "clusterd": "CLUSTERD_PATH", "a1-b2": "A1_B2_PATH"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}
