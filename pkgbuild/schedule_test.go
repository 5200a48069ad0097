package pkgbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSandbox runs nothing: it writes one file into the writable output mount
// and records the order of events. Packages listed in together wait until all of
// them have started, which only finishes when they run in parallel.
type fakeSandbox struct {
	mu       sync.Mutex
	events   []string
	together map[string]bool
	fail     map[string]bool
	wait     time.Duration
}

var _ Sandbox = (*fakeSandbox)(nil)

func (f *fakeSandbox) Run(ctx context.Context, spec SandboxSpec, log io.Writer) error {
	var name string
	for _, kv := range spec.Env {
		if v, ok := strings.CutPrefix(kv, "PKG_NAME="); ok {
			name = v
		}
	}
	f.record("start " + name)
	if f.together[name] {
		deadline := time.After(f.wait)
		for {
			f.mu.Lock()
			n := 0
			for _, e := range f.events {
				if strings.HasPrefix(e, "start ") && f.together[strings.TrimPrefix(e, "start ")] {
					n++
				}
			}
			f.mu.Unlock()
			if n == len(f.together) {
				break
			}
			select {
			case <-deadline:
				return errors.New("parallel builds never overlapped")
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	if f.fail[name] {
		f.record("fail " + name)
		return fmt.Errorf("fake failure of %s", name)
	}
	for _, m := range spec.Mounts {
		if m.Writable && strings.HasPrefix(m.Target, DefaultPrefix+"/packages/") {
			if err := os.WriteFile(filepath.Join(m.Source, "built-"+name), []byte(name), 0o644); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(log, "fake build of %s\n", name)
	f.record("end " + name)
	return nil
}

func (f *fakeSandbox) record(e string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeSandbox) index(e string) int {
	for i, x := range f.events {
		if x == e {
			return i
		}
	}
	return -1
}

func diamondRepo(t *testing.T) *testRepo {
	r := newRepo(t)
	r.pkg("top", `{"requires": ["left", "right"]}`, "true\n", nil)
	r.pkg("left", `{"requires": ["base"]}`, "true\n", nil)
	r.pkg("right", `{"requires": ["base"]}`, "true\n", nil)
	r.pkg("base", `{}`, "true\n", nil)
	return r
}

func TestScheduleOrderAndParallelism(t *testing.T) {
	fake := &fakeSandbox{together: map[string]bool{"left": true, "right": true}, wait: 10 * time.Second}
	r := diamondRepo(t)
	rs, err := r.builder(t.TempDir(), nil, func(o *Options) { o.Sandbox = fake; o.Jobs = 2 }).Build(context.Background())
	if err != nil {
		t.Fatalf("%v (events %v)", err, fake.events)
	}
	if len(rs) != 4 {
		t.Fatalf("results %+v", rs)
	}
	for _, dep := range [][2]string{{"base", "left"}, {"base", "right"}, {"left", "top"}, {"right", "top"}} {
		if end, start := fake.index("end "+dep[0]), fake.index("start "+dep[1]); end < 0 || start < 0 || end > start {
			t.Errorf("%s started before %s ended: %v", dep[1], dep[0], fake.events)
		}
	}
	_, got := readTarball(t, resultByName(t, rs, "top").Tarball)
	if got["built-top"].data != "top" {
		t.Errorf("top tarball: %v", got)
	}
}

func TestScheduleJobsLimit(t *testing.T) {
	// With one job the two middle packages cannot overlap: the fake reports it.
	fake := &fakeSandbox{together: map[string]bool{"left": true, "right": true}, wait: 300 * time.Millisecond}
	r := diamondRepo(t)
	_, err := r.builder(t.TempDir(), nil, func(o *Options) { o.Sandbox = fake; o.Jobs = 1 }).Build(context.Background())
	if err == nil || !strings.Contains(err.Error(), "never overlapped") {
		t.Fatalf("got %v, want the serial builds not to overlap", err)
	}
}

func TestScheduleFailureSkipsDependents(t *testing.T) {
	fake := &fakeSandbox{fail: map[string]bool{"left": true}}
	r := diamondRepo(t)
	rs, err := r.builder(t.TempDir(), nil, func(o *Options) { o.Sandbox = fake }).Build(context.Background())
	if err == nil || !strings.Contains(err.Error(), "fake failure of left") {
		t.Fatalf("got %v", err)
	}
	if fake.index("start top") >= 0 {
		t.Errorf("top was started although left failed: %v", fake.events)
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	if strings.Join(names, " ") != "base right" {
		t.Errorf("results %v, want base and right", names)
	}
}

func TestBwrapArgs(t *testing.T) {
	spec := SandboxSpec{
		Argv:   []string{"/bin/bash", "/tmp/pkgbuild/build"},
		Env:    []string{"B=2", "A=1"},
		Dir:    "/tmp/work",
		Hide:   "/tmp/prefix",
		Mounts: []Mount{{Source: "/host/out", Target: "/tmp/prefix/packages/x", Writable: true}, {Source: "/host/src", Target: "/tmp/src/s"}},
		Dirs:   []string{"/tmp/home"},
	}
	args, err := bwrapArgs(spec)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	want := "--die-with-parent --new-session --unshare-all --clearenv --setenv A 1 --setenv B 2 --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp " +
		"--perms 0755 --tmpfs /tmp/prefix --perms 0755 --dir /tmp/home --bind /host/out /tmp/prefix/packages/x --ro-bind /host/src /tmp/src/s --remount-ro /tmp/prefix --chdir /tmp/work -- /bin/bash /tmp/pkgbuild/build"
	if got != want {
		t.Errorf("args:\n%s\nwant:\n%s", got, want)
	}
	spec.Network = true
	args, _ = bwrapArgs(spec)
	if !strings.Contains(strings.Join(args, " "), "--unshare-all --share-net") {
		t.Errorf("network not shared: %v", args)
	}
	// A prefix that does not exist on the host: its deepest existing ancestor
	// becomes a tmpfs with the ancestor's entries bound back read-only.
	parent := t.TempDir()
	os.Mkdir(filepath.Join(parent, "keep"), 0o755)
	os.Symlink("keep", filepath.Join(parent, "alias"))
	root, err := rootArgs(filepath.Join(parent, "opt", "cluster"), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantRoot := fmt.Sprintf("--ro-bind / / --tmpfs %s --symlink keep %s/alias --ro-bind %s/keep %s/keep", parent, parent, parent, parent)
	if strings.Join(root, " ") != wantRoot {
		t.Errorf("root args:\n%s\nwant:\n%s", strings.Join(root, " "), wantRoot)
	}
}
