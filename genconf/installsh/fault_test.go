package installsh_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"imagebuilder/genconf/installsh/hosttree"
	"imagebuilder/genconf/internal/testbundle"
	"imagebuilder/pkgbuild/bundle"
)

var faultTrials = flag.Int("installsh.trials", 30, "trials of TestInstallKilledAtRandom (make bench-installsh runs 200)")

// scenario is one command install.sh is killed in, from a prepared root.
type scenario struct {
	name     string
	prepared string   // root in its state before the command (copied per trial)
	args     []string // the command
	script   string
	old, new string // config hash of the complete install before/after ("" = none)
	duration time.Duration
}

// TestInstallKilledAtRandom kills install.sh with SIGKILL (its whole process
// group: bash, tar, zstd) at a random moment of a fresh install, an upgrade
// and a rollback, over many trials. After every kill the root must hold the
// old or the new install, complete (checked against its manifest.json, with
// every unit of it linked and the role intact); a second run of the same
// command must then succeed and leave a complete install with no leftovers.
func TestInstallKilledAtRandom(t *testing.T) {
	a := serve(t, testbundle.Options{Version: "1", Padding: 2 << 20}, configA)
	b := serve(t, testbundle.Options{Version: "2", ExtraUnit: "app.service", Padding: 2 << 20}, configB)
	work := t.TempDir()
	prep := func(name string, steps ...[]string) string {
		root := filepath.Join(work, name)
		r := fakeRoot(t)
		if err := os.Rename(r, root); err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			mustRun(t, s[0], append(s[1:], "--root", root)...)
		}
		return root
	}
	scenarios := []*scenario{
		{name: "install", prepared: prep("empty"), script: b.InstallSh, args: []string{"--role", "master"}, old: "", new: identity(t, b.Bundle)},
		{name: "upgrade", prepared: prep("with-a", []string{a.InstallSh, "--role", "master"}), script: b.InstallSh, args: []string{"--upgrade", "--role", "master"}, old: identity(t, a.Bundle), new: identity(t, b.Bundle)},
		{name: "uninstall", prepared: prep("with-a-2", []string{a.InstallSh, "--role", "master"}), script: a.InstallSh, args: []string{"--uninstall"}, old: identity(t, a.Bundle), new: ""},
		{name: "rollback", prepared: prep("with-a-b", []string{a.InstallSh, "--role", "master"}, []string{b.InstallSh, "--upgrade"}), script: b.InstallSh, args: []string{"--rollback"}, old: identity(t, b.Bundle), new: identity(t, a.Bundle)},
	}
	pristine := fakeRoot(t)
	// How long an uninterrupted run takes sets the window kills are drawn from.
	// (the fastest of three runs: the machine is shared).
	for _, s := range scenarios {
		for j := 0; j < 3; j++ {
			root := copyRoot(t, s.prepared)
			start := time.Now()
			mustRun(t, s.script, append(s.args, "--root", root)...)
			if d := time.Since(start); j == 0 || d < s.duration {
				s.duration = d
			}
			if got := state(t, root, s); got != s.new {
				t.Fatalf("%s: an uninterrupted run left %q", s.name, got)
			}
			os.RemoveAll(root)
		}
		t.Logf("%s: an uninterrupted run takes %v", s.name, s.duration.Round(time.Millisecond))
	}

	type tally struct{ killed, finished, leftOld, leftNew int }
	counts := map[string]*tally{}
	where := map[string]int{} // the command a kill interrupted
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < *faultTrials; i++ {
		s := scenarios[i%len(scenarios)]
		if counts[s.name] == nil {
			counts[s.name] = &tally{}
		}
		c := counts[s.name]
		root := copyRoot(t, s.prepared)
		// Half the kills anywhere in the run, half in its last 40%, where
		// the renames and links are.
		delay := time.Duration(rng.Int64N(int64(s.duration) * 11 / 10))
		if i%2 == 1 {
			delay = s.duration*6/10 + time.Duration(rng.Int64N(int64(s.duration)*5/10))
		}
		trace := filepath.Join(work, "trace")
		os.Remove(trace)
		killed, out := runKilled(t, s.script, append(s.args, "--root", root), delay, "INSTALLSH_TRACE="+trace)
		if killed {
			where[s.name+": "+lastCommand(trace)]++
		}
		if killed {
			c.killed++
		} else {
			c.finished++
		}
		got := state(t, root, s)
		if !killed && got != s.new {
			t.Fatalf("trial %d (%s): finished but left %q (old %q new %q)\n%s", i, s.name, got, s.old, s.new, out)
		}
		switch got {
		case s.old:
			c.leftOld++
		case s.new:
			c.leftNew++
		default:
			t.Fatalf("trial %d (%s, kill after %v): left config %q, neither old %q nor new %q\n%s", i, s.name, delay, got, s.old, s.new, out)
		}
		// The second run always succeeds and leaves a complete install.
		out2, err := run(t, nil, s.script, append(s.args, "--root", root)...)
		if err != nil {
			t.Fatalf("trial %d (%s, kill after %v): second run failed: %v\n%s\nfirst run:\n%s", i, s.name, delay, err, out2, out)
		}
		after := state(t, root, s)
		// A second --rollback finishes an interrupted one, but rolls forward
		// again after a finished one (rollback toggles), so either is right.
		if s.name != "rollback" && after != s.new {
			t.Fatalf("trial %d (%s): second run left %q, want the new install", i, s.name, after)
		}
		if s.name == "uninstall" {
			if d := diffFiles(allFiles(t, pristine), allFiles(t, root)); len(d) > 0 {
				t.Fatalf("trial %d: the second uninstall left the root different from a pristine one: %v", i, d)
			}
		}
		if left := leftovers(t, root); len(left) > 0 {
			t.Fatalf("trial %d (%s): second run left %v", i, s.name, left)
		}
		os.RemoveAll(root)
	}
	var total, killed int
	for _, s := range scenarios {
		c := counts[s.name]
		if c == nil {
			continue
		}
		total += c.killed + c.finished
		killed += c.killed
		t.Logf("%-8s trials %3d: killed mid-run %3d, finished before the kill %3d; left old install %3d, new install %3d; second run OK %3d",
			s.name, c.killed+c.finished, c.killed, c.finished, c.leftOld, c.leftNew, c.killed+c.finished)
	}
	t.Logf("where the kills landed (scenario: last command started):")
	for _, k := range sortedKeys(where) {
		t.Logf("  %3d  %s", where[k], k)
	}
	t.Logf("all: %d trials, %d killed mid-run, every one left the old or the new complete install and every second run succeeded", total, killed)
	if killed < total/2 {
		t.Errorf("only %d of %d trials killed install.sh mid-run: the kill window is off", killed, total)
	}
}

// runKilled starts install.sh in its own process group and SIGKILLs the
// group after delay. killed says whether it was still running.
func runKilled(t *testing.T, script string, args []string, delay time.Duration, env ...string) (bool, string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("install.sh failed before the kill: %v\n%s", err, out.String())
		}
		return false, out.String()
	case <-time.After(delay):
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return true, out.String()
}

// state returns the config hash of the complete install in root ("" when
// nothing is installed) and fails the test when the install is incomplete:
// the prefix tree must match its manifest, every unit of it must be linked,
// other unit links may only dangle, the role must be intact.
func state(t *testing.T, root string, s *scenario) string {
	t.Helper()
	p := filepath.Join(root, prefix)
	if _, err := os.Lstat(p); os.IsNotExist(err) {
		if s.old != "" && s.new != "" {
			t.Fatalf("%s: the prefix is gone", s.name)
		}
		return ""
	}
	m, err := hosttree.CheckPrefix(root, prefix)
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	units, err := os.ReadDir(filepath.Join(p, "systemd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		l, err := os.Readlink(filepath.Join(root, "etc/systemd/system", u.Name()))
		if err != nil || l != prefix+"/systemd/"+u.Name() {
			t.Fatalf("%s: unit %s of the active install is not linked (%q, %v)", s.name, u.Name(), l, err)
		}
	}
	// Links to units the active install lacks may exist (they dangle, which
	// systemd ignores); they are removed by the run that finishes.
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/cluster.target")); err != nil || l != "/etc/systemd/system/cluster.target" {
		t.Fatalf("%s: multi-user.target.wants/cluster.target = %q, %v", s.name, l, err)
	}
	if role, err := os.ReadFile(filepath.Join(root, "etc/cluster/role")); s.name != "uninstall" && (err != nil || string(role) != "master\n") {
		t.Fatalf("%s: role %q, %v", s.name, role, err)
	}
	return manifestIdentity(m)
}

// identity names a bundle by its manifest: config hash and package ids.
func identity(t *testing.T, bundlePath string) string {
	t.Helper()
	f, err := os.Open(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := bundle.ReadManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	return manifestIdentity(m)
}

func manifestIdentity(m *bundle.Manifest) string {
	ids := []string{m.ConfigHash[:12]}
	for _, p := range m.Packages {
		ids = append(ids, p.ID)
	}
	return strings.Join(ids, " ")
}

// leftovers lists temporary files a finished run must not leave.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		n := fi.Name()
		if strings.HasPrefix(n, ".new-") || strings.HasPrefix(n, ".gone") || strings.HasPrefix(n, ".download-") || strings.Contains(n, ".tmp.") {
			out = append(out, p)
		}
		return nil
	})
	rels, _ := os.ReadDir(filepath.Join(root, "opt/cluster.releases"))
	if n := 0; true {
		for _, r := range rels {
			if r.IsDir() {
				n++
			}
		}
		if n > 2 {
			out = append(out, fmt.Sprintf("%d releases kept (want at most 2)", n))
		}
	}
	return out
}

func copyRoot(t *testing.T, src string) string {
	t.Helper()
	dst := src + fmt.Sprintf(".trial-%d", time.Now().UnixNano())
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	return dst
}

// lastCommand is the last command install.sh's trace shows, shortened to
// its kind ("mv -T", "tar -x", "ln -s" ...).
func lastCommand(trace string) string {
	data, _ := os.ReadFile(trace)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimLeft(lines[i], "+ ")
		lineNo, cmd, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		f := strings.Fields(cmd)
		if len(f) == 0 {
			continue
		}
		kind := f[0]
		if len(f) > 1 && strings.HasPrefix(f[1], "-") {
			kind += " " + f[1]
		}
		return fmt.Sprintf("line %s %s", lineNo, kind)
	}
	return "(before the first command)"
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// diffFiles compares two allFiles listings by path, type and mode.
func diffFiles(a, b map[string]hosttree.Node) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || (k != "." && v != w) {
			out = append(out, "-"+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "+"+k)
		}
	}
	sort.Strings(out)
	return out
}
