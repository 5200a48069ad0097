package installsh_test

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/genconf"
	"imagebuilder/genconf/installsh/hosttree"
	"imagebuilder/genconf/internal/testbundle"
)

const prefix = "/opt/cluster"

// serve generates a cluster bundle + install.sh from a test base bundle.
func serve(t testing.TB, o testbundle.Options, yaml string) *genconf.Output {
	t.Helper()
	base, err := testbundle.Base(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{"ip-detect": "#!/bin/sh\necho 10.0.0.1\n", "token.txt": "tok-0123456789abcdef-SECRET\n", "config.yaml": yaml}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := genconf.Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := genconf.Generate(slog.New(slog.DiscardHandler), cfg, base, filepath.Join(t.TempDir(), "serve"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const configA = "cluster_name: c1\nmaster_list: [10.0.0.1]\ntemplate_vars: {greeting: hello}\nsecrets: {join_token: {file: token.txt}}\n"
const configB = "cluster_name: c1\nmaster_list: [10.0.0.1]\ntemplate_vars: {greeting: bonjour}\nsecrets: {join_token: {file: token.txt}}\n"

// fakeRoot is a minimal systemd host root: what install.sh's preflight and
// unit linking need.
func fakeRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/lib/systemd", "etc/systemd/system", "opt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs install.sh with bash and returns its output.
func run(t testing.TB, env []string, script string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustRun(t testing.TB, script string, args ...string) string {
	t.Helper()
	out, err := run(t, nil, script, args...)
	if err != nil {
		t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// installed checks the prefix matches its manifest and returns the
// manifest's config hash.
func installed(t testing.TB, root string) string {
	t.Helper()
	m, err := hosttree.CheckPrefix(root, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return m.ConfigHash
}

// allFiles lists every path under root with its node (for before/after
// comparisons of a whole root).
func allFiles(t testing.TB, root string) map[string]hosttree.Node {
	t.Helper()
	out := map[string]hosttree.Node{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		n := hosttree.Node{Type: "file", Mode: fi.Mode()}
		if fi.Mode()&os.ModeSymlink != 0 {
			n.Target, _ = os.Readlink(p)
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
