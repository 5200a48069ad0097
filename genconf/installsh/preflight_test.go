package installsh_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imagebuilder/genconf/internal/testbundle"
)

// shimPath makes a PATH folder holding the host's tools except the ones
// left out, plus extra scripts (name -> body).
func shimPath(t *testing.T, leaveOut []string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	skip := map[string]bool{}
	for _, n := range leaveOut {
		skip[n] = true
	}
	for _, n := range []string{"bash", "tar", "sha256sum", "find", "readlink", "mktemp", "sed", "df", "awk", "cut", "sort", "tr",
		"tail", "grep", "mkdir", "rm", "mv", "ln", "chmod", "sync", "cat", "dirname", "id", "flock", "gzip", "zstd", "rmdir", "curl", "wget"} {
		if skip[n] {
			continue
		}
		p, err := exec.LookPath(n)
		if err != nil && (n == "curl" || n == "wget") {
			continue // downloads need only one of them
		}
		if err != nil {
			t.Fatalf("%s is needed for the tests: apt-get install it (%v)", n, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	for n, body := range extra {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPreflightRefusesWithClearMessages: each refusal names what is wrong
// and leaves the root untouched.
func TestPreflightRefusesWithClearMessages(t *testing.T) {
	a := serve(t, testbundle.Options{Version: "1"}, configA)
	other := serve(t, testbundle.Options{Version: "1"}, strings.Replace(configA, "cluster_name: c1", "cluster_name: c2", 1))
	gz := serve(t, testbundle.Options{Version: "1"}, configA+"bundle_compression: gzip\n")

	corrupt := filepath.Join(t.TempDir(), "corrupt.tar.zst")
	data, _ := os.ReadFile(a.Bundle)
	data[len(data)/2] ^= 0xff
	os.WriteFile(corrupt, data, 0o644)
	lonely := filepath.Join(t.TempDir(), "install.sh")
	script, _ := os.ReadFile(a.InstallSh)
	os.WriteFile(lonely, script, 0o755)

	noZstd := shimPath(t, []string{"zstd"}, nil)
	tinyDisk := shimPath(t, []string{"df"}, map[string]string{"df": "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted'\necho 'fake 2048 2000 48 99% /'\n"})

	cases := []struct {
		name   string
		setup  func(root string)
		env    []string
		script string
		args   []string
		want   string
	}{
		{name: "corrupt bundle", script: a.InstallSh, args: []string{"--bundle", corrupt},
			want: "has sha256 "},
		{name: "no bundle anywhere", script: lonely,
			want: "no bundle: pass --bundle FILE or --url URL"},
		{name: "another cluster at the prefix", script: a.InstallSh,
			setup: func(root string) { mustRun(t, other.InstallSh, "--root", root) },
			want:  "is in use by another cluster ('c2'); this bundle is for 'c1'"},
		{name: "foreign folder at the prefix", script: a.InstallSh,
			setup: func(root string) { os.MkdirAll(filepath.Join(root, prefix, "data"), 0o755) },
			want:  "exists and is not a cluster install"},
		{name: "prefix baked into an image", script: a.InstallSh,
			setup: func(root string) {
				os.MkdirAll(filepath.Join(root, prefix), 0o755)
				os.WriteFile(filepath.Join(root, prefix, "manifest.json"), []byte("{}"), 0o644)
			},
			want: "is a directory baked into this host's image"},
		{name: "no systemd", script: a.InstallSh,
			setup: func(root string) { os.RemoveAll(filepath.Join(root, "usr/lib/systemd")) },
			want:  "has no systemd"},
		{name: "no zstd", script: a.InstallSh, env: []string{"PATH=" + noZstd},
			want: "zstd is not installed and the bundle is zstd-compressed: install it (apt-get install zstd, or dnf install zstd) or regenerate with bundle_compression: gzip"},
		{name: "not enough space", script: a.InstallSh, env: []string{"PATH=" + tinyDisk},
			want: "not enough space in"},
		{name: "bad role", script: a.InstallSh, args: []string{"--role", "boss"},
			want: "--role boss: must be master, agent or agent_public"},
		{name: "rollback with nothing before", script: a.InstallSh, args: []string{"--rollback"},
			setup: func(root string) { mustRun(t, a.InstallSh, "--root", root) },
			want:  "no previous bundle to roll back to"},
		{name: "unit file in the way", script: a.InstallSh,
			setup: func(root string) {
				os.WriteFile(filepath.Join(root, "etc/systemd/system/cluster.target"), []byte("[Unit]\n"), 0o644)
			},
			want: "cluster.target is a file, not a link into /opt/cluster/systemd: refusing to replace it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t)
			if tc.setup != nil {
				tc.setup(root)
			}
			before := allFiles(t, root)
			out, err := run(t, tc.env, tc.script, append(tc.args, "--root", root)...)
			if err == nil {
				t.Fatalf("install.sh succeeded:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
			after := allFiles(t, root)
			for k, v := range after {
				if _, ok := before[k]; !ok && !strings.HasPrefix(k, "opt/.cluster.install.lock") && !strings.HasPrefix(k, "opt/cluster.releases") {
					t.Errorf("refused run left %s (%v)", k, v)
				}
			}
		})
	}

	// The gzip bundle installs without zstd on the PATH.
	root := fakeRoot(t)
	if out, err := run(t, []string{"PATH=" + noZstd}, gz.InstallSh, "--root", root); err != nil {
		t.Fatalf("gzip bundle without zstd: %v\n%s", err, out)
	}
	installed(t, root)

	// A usage error exits 2 with the usage.
	out, err := run(t, nil, a.InstallSh, "--frobnicate")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(out, "Usage: install.sh") {
		t.Errorf("unknown flag: %v\n%s", err, out)
	}
}

// TestInstallFromURL: --url with a folder URL, and the bootstrap_url baked
// by genconf when the bundle is not next to the script (loopback server).
func TestInstallFromURL(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if _, err := exec.LookPath("wget"); err != nil {
			t.Fatal("install.sh downloads with curl or wget: apt-get install curl")
		}
	}
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	out := serve(t, testbundle.Options{}, configA+"bootstrap_url: "+srv.URL+"/serve/\n")
	os.MkdirAll(filepath.Join(dir, "serve"), 0o755)
	data, _ := os.ReadFile(out.Bundle)
	os.WriteFile(filepath.Join(dir, "serve", filepath.Base(out.Bundle)), data, 0o644)
	lonely := filepath.Join(t.TempDir(), "install.sh")
	script, _ := os.ReadFile(out.InstallSh)
	os.WriteFile(lonely, script, 0o755)

	root := fakeRoot(t)
	mustRun(t, lonely, "--root", root)
	installed(t, root)

	root2 := fakeRoot(t)
	mustRun(t, lonely, "--root", root2, "--url", srv.URL+"/serve/")
	installed(t, root2)

	if o, err := run(t, nil, lonely, "--root", fakeRoot(t), "--url", srv.URL+"/nope/"); err == nil || !strings.Contains(o, "downloading "+srv.URL+"/nope/") {
		t.Errorf("a bad URL: %v\n%s", err, o)
	}
}

// TestConcurrentRunRefused: a second install.sh while one holds the lock is
// refused with a message naming the lock.
func TestConcurrentRunRefused(t *testing.T) {
	a := serve(t, testbundle.Options{}, configA)
	root := fakeRoot(t)
	lock := filepath.Join(root, "opt", ".cluster.install.lock")
	holder := exec.Command("flock", lock, "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatalf("flock (util-linux) is needed: %v", err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	for i := 0; i < 100; i++ { // until the holder has the lock
		if exec.Command("flock", "-n", lock, "true").Run() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := run(t, nil, a.InstallSh, "--root", root)
	if err == nil || !strings.Contains(out, "another install.sh is working on /opt/cluster") {
		t.Errorf("concurrent run: %v\n%s", err, out)
	}
	if _, err := os.Lstat(filepath.Join(root, prefix)); !os.IsNotExist(err) {
		t.Errorf("the refused run installed something: %v", err)
	}
}
