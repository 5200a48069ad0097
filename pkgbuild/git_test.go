package pkgbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitRepo makes a repository with two commits and returns its path and the
// ids of both commits: the first has version "1", the second version "2" and a
// file in a subdirectory.
func gitRepo(t *testing.T) (dir, first, second string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git not found: apt-get install git")
	}
	dir = t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "--quiet", "--initial-branch=main")
	os.WriteFile(filepath.Join(dir, "version"), []byte("1\n"), 0o644)
	git("add", ".")
	git("commit", "--quiet", "-m", "one")
	first = git("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "version"), []byte("2\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "tool.sh"), []byte("#!/bin/sh\necho tool\n"), 0o755)
	git("add", ".")
	git("commit", "--quiet", "-m", "two")
	second = git("rev-parse", "HEAD")
	return dir, first, second
}

const gitScript = `set -eu
mkdir -p $OUT
cp $SRC/code/version $OUT/version
ls -A $SRC/code > $OUT/listing
`

func TestGitSource(t *testing.T) {
	requireBwrap(t)
	repo, first, second := gitRepo(t)
	store := t.TempDir()
	build := func(url, commit string, stores ...string) (Result, error) {
		r := newRepo(t)
		r.pkg("code", `{"sources": {"code": {"kind": "git", "url": "`+url+`", "commit": "`+commit+`"}}}`, gitScript, nil)
		st := store
		if len(stores) > 0 {
			st = stores[0]
		}
		rs, err := r.builder(st, nil, nil).Build(context.Background())
		if err != nil {
			return Result{}, err
		}
		return rs[0], nil
	}
	// The older commit, not the branch tip, is what the build sees.
	res, err := build(repo, first)
	if err != nil {
		t.Fatal(err)
	}
	_, got := readTarball(t, res.Tarball)
	if got["version"].data != "1\n" || got["listing"].data != "version\n" {
		t.Errorf("commit %s: version %q, listing %q", first, got["version"].data, got["listing"].data)
	}
	if src := res.Metadata.Sources["code"]; src.Kind != KindGit || src.Digest != first || src.URL != repo {
		t.Errorf("metadata source: %+v", src)
	}
	// file:// URLs work too; the tip has the subdirectory with its mode.
	res2, err := build("file://"+repo, second)
	if err != nil {
		t.Fatal(err)
	}
	_, got = readTarball(t, res2.Tarball)
	if got["version"].data != "2\n" || got["listing"].data != "sub\nversion\n" || res2.ID == res.ID {
		t.Errorf("commit %s: %q %q (ids %s, %s)", second, got["version"].data, got["listing"].data, res.ID, res2.ID)
	}
	tree := filepath.Join(store, "cache", "sources", "git", second)
	if fi, err := os.Stat(filepath.Join(tree, "sub", "tool.sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("cached tree: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(tree, ".git")); err == nil {
		t.Error("the cached tree holds .git")
	}

	t.Run("cached without the repository", func(t *testing.T) {
		moved := repo + "-gone"
		if err := os.Rename(repo, moved); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(moved, repo)
		r := newRepo(t)
		r.pkg("code", `{"sources": {"code": {"kind": "git", "url": "`+repo+`", "commit": "`+first+`"}}, "environment": {"X": "rebuild"}}`, gitScript, nil)
		if _, err := r.builder(store, nil, nil).Build(context.Background()); err != nil {
			t.Fatalf("commit in the source cache was fetched again: %v", err)
		}
	})
	t.Run("wrong commit", func(t *testing.T) {
		missing := strings.Repeat("ab", 20)
		_, err := build(repo, missing)
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "has no commit "+missing) || !strings.Contains(err.Error(), repo) || !strings.Contains(err.Error(), "package code") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not a repository", func(t *testing.T) {
		// A fresh store: the commit is not in its source cache.
		_, err := build(t.TempDir(), first, t.TempDir())
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "source code") || !strings.Contains(err.Error(), "fetching") {
			t.Fatalf("got %v", err)
		}
	})
}
