// Package packages_test checks the reference package set: every
// buildinfo.json is well-formed under the contract, and every build script
// runs with exactly the environment pkgbuild gives it, produces static
// binaries and units with the prefix baked in, and gives the same bytes when
// run again from another directory.
package packages_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const prefix = "/opt/cluster"

type source struct {
	Kind     string   `json:"kind"`
	URL      string   `json:"url,omitempty"`
	SHA256   string   `json:"sha256,omitempty"`
	Commit   string   `json:"commit,omitempty"`
	Path     string   `json:"path,omitempty"`
	Module   string   `json:"module,omitempty"`
	Version  string   `json:"version,omitempty"`
	GoSum    string   `json:"go_sum,omitempty"`
	Packages []string `json:"packages,omitempty"`
}

type buildinfo struct {
	Sources        map[string]source   `json:"sources"`
	Requires       []string            `json:"requires"`
	Environment    map[string]string   `json:"environment"`
	Network        bool                `json:"network"`
	StateDirectory bool                `json:"state_directory"`
	Username       []string            `json:"username"`
	Units          map[string][]string `json:"units"`
}

func readBuildinfo(t *testing.T, name string) buildinfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(name, "buildinfo.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var bi buildinfo
	if err := dec.Decode(&bi); err != nil {
		t.Fatalf("%s/buildinfo.json: %v", name, err)
	}
	return bi
}

func TestBuildinfo(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		sources  []string
		requires []string
		units    map[string][]string
	}{
		{name: "firstboot", sources: []string{"firstboot"},
			units: map[string][]string{"cluster.target": {}, "cluster-ipdetect.service": {}, "cluster-firstboot.service": {}, "cluster-testd.path": {}, "cluster-testd.service": {}}},
		{name: "clusterd", sources: []string{"src", "units"},
			units: map[string][]string{"clusterd-master.service": {"master"}, "cluster-etcd.service": {"master"}, "clusterd-agent.service": {"agent", "agent_public"}}},
		{name: "join-check", requires: []string{"clusterd"}},
		{name: "tcpwait", sources: []string{"src"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bi := readBuildinfo(t, tc.name)
			var names []string
			for n, s := range bi.Sources {
				names = append(names, n)
				if s.Kind != "dir" {
					t.Errorf("source %s: kind %q, want dir (the reference set builds offline)", n, s.Kind)
					continue
				}
				abs, err := filepath.Abs(filepath.Join(tc.name, s.Path))
				if err != nil {
					t.Fatal(err)
				}
				if rel, err := filepath.Rel(repo, abs); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
					t.Errorf("source %s: %s leaves the repository", n, s.Path)
				}
				if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
					t.Errorf("source %s: %s is not a directory: %v", n, s.Path, err)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.sources) || !slices.Equal(bi.Requires, tc.requires) {
				t.Errorf("sources %v requires %v, want %v %v", names, bi.Requires, tc.sources, tc.requires)
			}
			if len(bi.Units) != len(tc.units) {
				t.Errorf("units %v, want %v", bi.Units, tc.units)
			}
			for u, roles := range tc.units {
				if got, ok := bi.Units[u]; !ok || !slices.Equal(got, roles) {
					t.Errorf("unit %s: roles %v, want %v", u, got, roles)
				}
			}
			script, err := os.ReadFile(filepath.Join(tc.name, "build"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(script), "#!/usr/bin/env bash\n") || !strings.Contains(string(script), "\nset -euo pipefail\n") {
				t.Errorf("%s/build must be a bash script with set -euo pipefail", tc.name)
			}
			if fi, err := os.Stat(filepath.Join(tc.name, "build")); err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("%s/build is not executable", tc.name)
			}
		})
	}
}

// builder runs build scripts with the environment pkgbuild provides.
type builder struct {
	t       *testing.T
	goBin   string
	gocache string
}

func newBuilder(t *testing.T) *builder {
	goPath, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: the build scripts need the Go toolchain (golang-go, or Go 1.26 from go.dev)")
	}
	cache := t.TempDir()
	if out, err := exec.Command(goPath, "env", "GOCACHE").Output(); err == nil && strings.TrimSpace(string(out)) != "off" {
		// Share the user's build cache so the standard library compiles once.
		cache = strings.TrimSpace(string(out))
	}
	return &builder{t: t, goBin: filepath.Dir(goPath), gocache: cache}
}

// build lays the package's dir sources out as $SRC/<name> in a fresh
// directory and runs its build script; it returns OUT.
func (b *builder) build(name string, extraEnv ...string) string {
	t := b.t
	t.Helper()
	bi := readBuildinfo(t, name)
	work := t.TempDir()
	src := filepath.Join(work, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, s := range bi.Sources {
		if err := os.CopyFS(filepath.Join(src, n), os.DirFS(filepath.Join(name, s.Path))); err != nil {
			t.Fatal(err)
		}
	}
	// Sources are read-only in the sandbox.
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != src {
			fi, _ := d.Info()
			os.Chmod(p, fi.Mode().Perm()&^0o222)
		}
		return nil
	})
	t.Cleanup(func() {
		filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	out := filepath.Join(work, "out")
	for _, d := range []string{out, filepath.Join(work, "home"), filepath.Join(work, "tmp")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs(filepath.Join(name, "build"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", abs)
	cmd.Dir = work
	cmd.Env = append([]string{
		"PATH=" + b.goBin + ":/usr/bin:/bin",
		"HOME=" + filepath.Join(work, "home"),
		"TMPDIR=" + filepath.Join(work, "tmp"),
		"GOCACHE=" + b.gocache,
		"GOFLAGS=-mod=mod -trimpath",
		"GOPROXY=off",
		"CGO_ENABLED=0",
		"SOURCE_DATE_EPOCH=0",
		"SRC=" + src,
		"OUT=" + out,
		"PKG_PATH=" + prefix + "/packages/" + name + "--test",
		"PKG_ID=" + name + "--test",
		"PKG_NAME=" + name,
		"CLUSTER_PREFIX=" + prefix,
	}, extraEnv...)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s/build: %v\n%s", name, err, o)
	}
	left, _ := os.ReadDir(filepath.Join(work, "tmp"))
	if len(left) != 0 {
		t.Errorf("%s/build left %d entries in TMPDIR", name, len(left))
	}
	return out
}

// tree maps every path below root to its type, mode and content.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		m[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func assertStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v)", path, p.Type)
		}
	}
}

func TestBuilds(t *testing.T) {
	b := newBuilder(t)
	clusterd := b.build("clusterd")
	builds := []struct {
		name    string
		env     []string
		files   []string
		static  []string
		grep    map[string]string // file -> text it must hold
		noToken []string          // files that must not hold @PREFIX@
	}{
		{name: "firstboot",
			files:  []string{"bin", "bin/cluster-firstboot", "systemd", "systemd/cluster-firstboot.service", "systemd/cluster-ipdetect.service", "systemd/cluster-testd.path", "systemd/cluster-testd.service", "systemd/cluster.target"},
			static: []string{"bin/cluster-firstboot"},
			grep: map[string]string{
				"systemd/cluster-firstboot.service": "ExecStart=/opt/cluster/bin/cluster-firstboot join\n",
				"systemd/cluster-ipdetect.service":  "ExecStart=/opt/cluster/bin/cluster-firstboot ipdetect\n",
			},
			noToken: []string{"systemd/cluster-firstboot.service", "systemd/cluster-ipdetect.service", "systemd/cluster.target"}},
		{name: "clusterd",
			files:  []string{"bin", "bin/clusterd", "systemd", "systemd/cluster-etcd.service", "systemd/clusterd-agent.service", "systemd/clusterd-master.service"},
			static: []string{"bin/clusterd"},
			grep: map[string]string{
				"systemd/clusterd-master.service": "ExecStart=/opt/cluster/bin/clusterd serve --role master\n",
				"systemd/clusterd-agent.service":  "EnvironmentFile=/opt/cluster/etc/cluster.env\n",
			},
			noToken: []string{"systemd/clusterd-agent.service", "systemd/clusterd-master.service"}},
		{name: "join-check", env: []string{"CLUSTERD_PATH=" + clusterd},
			files: []string{"bin", "bin/cluster-join-check"},
			grep: map[string]string{
				"bin/cluster-join-check": "exec " + clusterd + "/bin/clusterd check --role \"${1:?usage: cluster-join-check ROLE}\"\n",
			}},
		{name: "tcpwait",
			files:  []string{"bin", "bin/cluster-tcpwait"},
			static: []string{"bin/cluster-tcpwait"}},
	}
	for _, tc := range builds {
		t.Run(tc.name, func(t *testing.T) {
			b := *b
			b.t = t
			first := b.build(tc.name, tc.env...)
			second := b.build(tc.name, tc.env...)
			one, two := tree(t, first), tree(t, second)
			var files []string
			for p := range one {
				if p != "." {
					files = append(files, p)
				}
			}
			slices.Sort(files)
			if !slices.Equal(files, tc.files) {
				t.Errorf("OUT holds %v, want %v", files, tc.files)
			}
			for p, v := range one {
				if two[p] != v {
					t.Errorf("%s differs between two builds", p)
				}
			}
			if len(one) != len(two) {
				t.Errorf("two builds hold %d and %d paths", len(one), len(two))
			}
			for _, s := range tc.static {
				assertStatic(t, filepath.Join(first, s))
			}
			for f, want := range tc.grep {
				if !strings.Contains(one[f], want) {
					t.Errorf("%s does not hold %q:\n%s", f, want, one[f])
				}
			}
			for _, f := range tc.noToken {
				if strings.Contains(one[f], "@PREFIX@") {
					t.Errorf("%s still holds @PREFIX@", f)
				}
			}
		})
	}
}

// TestBuiltBinariesRun runs what the builds produced: the agent knows the
// prefix it was built for, and the join check answers "not joined" while
// no master is up.
func TestBuiltBinariesRun(t *testing.T) {
	b := newBuilder(t)
	firstboot := b.build("firstboot")
	out, err := exec.Command(filepath.Join(firstboot, "bin", "cluster-firstboot"), "help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "(default "+prefix+")") {
		t.Errorf("cluster-firstboot help: %v\n%s", err, out)
	}
	clusterd := b.build("clusterd")
	joinCheck := b.build("join-check", "CLUSTERD_PATH="+clusterd)
	check := filepath.Join(joinCheck, "bin", "cluster-join-check")
	cmd := exec.Command(check)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "usage: cluster-join-check ROLE") {
		t.Errorf("cluster-join-check without a role: %v\n%s", err, out)
	}
	// No master's etcd serves 127.0.0.1:2379 here: the check must fail, naming it.
	cmd = exec.Command(check, "agent")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "DETECTED_IP=127.0.0.2", "MASTER_LIST=127.0.0.1"}
	out, err = cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "127.0.0.1:2379") {
		t.Errorf("cluster-join-check agent with no master: %v\n%s", err, out)
	}
}
