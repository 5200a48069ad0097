package pkgbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"imagebuilder/pkgbuild/archive"
)

// gitURL resolves the url of a git source: URLs (with a scheme, or scp-like
// host:path) are kept, a local path is made absolute against the package
// folder.
func gitURL(pkgDir, raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		return raw
	}
	if i := strings.Index(raw, ":"); i > 0 && !strings.Contains(raw[:i], "/") {
		return raw // scp-like user@host:path
	}
	if filepath.IsAbs(raw) {
		return filepath.Clean(raw)
	}
	return filepath.Join(pkgDir, raw)
}

// gitTree returns a directory holding the tree of commit (no .git), fetched
// from repo with the git command: sources/git/<commit> is the checked-out tree,
// sources/git-repos/<hash of repo> a bare repository fetches go into. The
// commit id names the content, so a tree in the cache is never fetched again.
func (c *sourceCache) gitTree(ctx context.Context, repo, commit string) (string, error) {
	final := filepath.Join(c.dir, "git", commit)
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return final, nil
	}
	if _, err := exec.LookPath("git"); err != nil {
		return "", fmt.Errorf("git sources need the git command (apt-get install git): %w", err)
	}
	h := sha256.Sum256([]byte(repo))
	bare := filepath.Join(c.dir, "git-repos", hex.EncodeToString(h[:16]))
	c.gitMu.Lock()
	defer c.gitMu.Unlock()
	if _, err := os.Stat(filepath.Join(bare, "HEAD")); err != nil {
		if err := os.MkdirAll(bare, 0o755); err != nil {
			return "", fmt.Errorf("source cache: %w", err)
		}
		if _, err := runGit(ctx, bare, "init", "--quiet", "--bare"); err != nil {
			return "", err
		}
	}
	if !gitHasCommit(ctx, bare, commit) {
		// By id first (servers and local repositories allow it for reachable
		// commits); else every branch and tag, then look again.
		if _, err := runGit(ctx, bare, "fetch", "--quiet", "--no-tags", repo, commit); err != nil {
			if _, err2 := runGit(ctx, bare, "fetch", "--quiet", "--tags", repo, "+refs/heads/*:refs/remotes/src/*"); err2 != nil {
				return "", fmt.Errorf("fetching %s: %w", repo, err2)
			}
		}
		if !gitHasCommit(ctx, bare, commit) {
			return "", fmt.Errorf("git repository %s has no commit %s (give the full id of a commit on one of its branches or tags)", repo, commit)
		}
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", fmt.Errorf("source cache: %w", err)
	}
	work, err := os.MkdirTemp(filepath.Dir(final), ".tmp-"+commit[:12]+"-")
	if err != nil {
		return "", fmt.Errorf("source cache: %w", err)
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", err
	}
	if err := gitArchive(ctx, bare, commit, root); err != nil {
		return "", fmt.Errorf("checking out %s of %s: %w", commit, repo, err)
	}
	if err := os.Rename(root, final); err != nil {
		if fi, serr := os.Stat(final); serr == nil && fi.IsDir() {
			return final, nil
		}
		return "", fmt.Errorf("source cache: %w", err)
	}
	c.log.Info("fetched git source", "repo", repo, "commit", commit)
	return final, nil
}

// gitHasCommit reports whether the repository holds commit as a commit object.
func gitHasCommit(ctx context.Context, gitDir, commit string) bool {
	out, err := runGit(ctx, gitDir, "cat-file", "-t", commit)
	return err == nil && strings.TrimSpace(out) == "commit"
}

// gitArchive writes the tree of commit into dest through the strict archive
// reader (no path leaves dest, links stay inside).
func gitArchive(ctx context.Context, gitDir, commit, dest string) error {
	cmd := gitCommand(ctx, gitDir, "archive", "--format=tar", commit)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	xerr := archive.Extract(archive.NewReader(pipe, archive.Policy{Lenient: true}), dest)
	io.Copy(io.Discard, pipe)
	werr := cmd.Wait()
	if xerr != nil {
		return xerr
	}
	if werr != nil {
		return fmt.Errorf("git archive: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func gitCommand(ctx context.Context, gitDir string, args ...string) *exec.Cmd {
	full := append([]string{"--git-dir", gitDir, "-c", "protocol.file.allow=always", "-c", "core.autocrlf=false"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_ASKPASS=true")
	return cmd
}

// runGit runs git on gitDir and returns its stdout; the error carries stderr.
func runGit(ctx context.Context, gitDir string, args ...string) (string, error) {
	cmd := gitCommand(ctx, gitDir, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
