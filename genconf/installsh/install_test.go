package installsh_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"imagebuilder/genconf/internal/testbundle"
)

// TestInstallUpgradeRollbackUninstall runs install.sh for real against a
// root folder through its whole life: install, re-run, upgrade, rollback,
// roll forward, uninstall.
func TestInstallUpgradeRollbackUninstall(t *testing.T) {
	a := serve(t, testbundle.Options{Version: "1"}, configA)
	b := serve(t, testbundle.Options{Version: "2", ExtraUnit: "app.service"}, configB)
	root := fakeRoot(t)
	before := allFiles(t, root)

	out := mustRun(t, a.InstallSh, "--root", root, "--role", "master")
	if got := installed(t, root); got != a.ConfigHash {
		t.Fatalf("installed config %s, want %s", got, a.ConfigHash)
	}
	if !strings.Contains(out, "installed cluster 'c1'") {
		t.Errorf("install output: %s", out)
	}
	role, _ := os.ReadFile(filepath.Join(root, "etc/cluster/role"))
	if string(role) != "master\n" {
		t.Errorf("role = %q", role)
	}
	link, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/cluster.target"))
	if link != "/opt/cluster/systemd/cluster.target" {
		t.Errorf("cluster.target link = %q", link)
	}
	if fi, err := os.Stat(filepath.Join(root, prefix, "etc/secrets.env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.env on disk: %v %v", fi, err)
	}

	// Re-running is idempotent.
	snap := allFiles(t, root)
	out = mustRun(t, a.InstallSh, "--root", root, "--role", "master")
	if !strings.Contains(out, "already installed") || !reflect.DeepEqual(snap, allFiles(t, root)) {
		t.Errorf("re-run changed the root or did not say so: %s", out)
	}

	// Another bundle needs --upgrade.
	if out, err := run(t, nil, b.InstallSh, "--root", root); err == nil || !strings.Contains(out, "use --upgrade") {
		t.Errorf("install over another bundle: %v %s", err, out)
	}
	mustRun(t, b.InstallSh, "--root", root, "--upgrade")
	if got := installed(t, root); got != b.ConfigHash {
		t.Fatalf("after upgrade: config %s, want %s", got, b.ConfigHash)
	}
	if _, err := os.Readlink(filepath.Join(root, "etc/systemd/system/app.service")); err != nil {
		t.Errorf("upgrade did not link the new unit: %v", err)
	}
	if role, _ := os.ReadFile(filepath.Join(root, "etc/cluster/role")); string(role) != "master\n" {
		t.Errorf("upgrade lost the role: %q", role)
	}

	mustRun(t, b.InstallSh, "--root", root, "--rollback")
	if got := installed(t, root); got != a.ConfigHash {
		t.Fatalf("after rollback: config %s, want %s", got, a.ConfigHash)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/app.service")); !os.IsNotExist(err) {
		t.Errorf("rollback kept the link of a unit the old bundle lacks: %v", err)
	}
	mustRun(t, a.InstallSh, "--root", root, "--rollback")
	if got := installed(t, root); got != b.ConfigHash {
		t.Fatalf("after a second rollback: config %s, want %s", got, b.ConfigHash)
	}

	var logs strings.Builder
	defer func() {
		if strings.Contains(logs.String(), "tok-0123456789abcdef-SECRET") {
			t.Errorf("install.sh printed the secret:\n%s", logs.String())
		}
	}()
	logs.WriteString(mustRun(t, b.InstallSh, "--root", root, "--rollback"))
	logs.WriteString(mustRun(t, b.InstallSh, "--root", root, "--rollback"))
	if got := installed(t, root); got != b.ConfigHash {
		t.Fatalf("after rolling back and forth: config %s, want %s", got, b.ConfigHash)
	}
	out = mustRun(t, b.InstallSh, "--root", root, "--uninstall")
	logs.WriteString(out)
	if !strings.Contains(out, "uninstalled") {
		t.Errorf("uninstall output: %s", out)
	}
	if after := allFiles(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("uninstall left the root different:\nbefore %v\nafter  %v", before, after)
	}
	out = mustRun(t, b.InstallSh, "--root", root, "--uninstall")
	if !strings.Contains(out, "nothing installed") {
		t.Errorf("second uninstall: %s", out)
	}
}
