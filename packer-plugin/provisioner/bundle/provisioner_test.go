package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"imagebuilder/overlay"
)

func TestPrepareReportsEveryField(t *testing.T) {
	dir := t.TempDir()
	var p Provisioner
	err := p.Prepare(map[string]interface{}{
		"bundle":            filepath.Join(dir, "missing.tar.zst"),
		"role":              "boss",
		"install_script":    dir,
		"staging_directory": "tmp/x",
		"execute_command":   "sh install.sh",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"bundle: " + filepath.Join(dir, "missing.tar.zst") + ": no such file or directory",
		`role: "boss" is not a role`,
		"install_script: " + dir + " is a directory",
		`staging_directory: "tmp/x" must be an absolute path`,
		"execute_command: \"sh install.sh\" must run {{.Path}}",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := p.Prepare(map[string]interface{}{"bundel": "x"}); err == nil || !strings.Contains(err.Error(), `unknown configuration key: '"bundel"'`) {
		t.Errorf("misspelled key: %v", err)
	}
	if err := p.Prepare(map[string]interface{}{}); err == nil || !strings.Contains(err.Error(), "bundle: required") {
		t.Errorf("no bundle: %v", err)
	}
	b := testBundle(t)
	if err := p.Prepare(map[string]interface{}{"bundle": b, "role": "agent"}); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if p.config.StagingDirectory != "/tmp/imagebuilder-bundle" || !strings.Contains(p.config.ExecuteCommand, "{{.Path}}") {
		t.Errorf("defaults: %+v", p.config)
	}
}

// bwrapComm is a Packer communicator whose "machine" is a folder: commands
// run as root inside it with bubblewrap, uploads land in it.
type bwrapComm struct {
	t    *testing.T
	root string
}

var _ packersdk.Communicator = (*bwrapComm)(nil)

func (c *bwrapComm) Start(ctx context.Context, cmd *packersdk.RemoteCmd) error {
	args := []string{"--bind", c.root, "/", "--ro-bind", "/usr", "/usr",
		"--proc", "/proc", "--dev", "/dev", "--uid", "0", "--gid", "0",
		"sh", "-c", cmd.Command}
	x := exec.CommandContext(ctx, "bwrap", args...)
	x.Stdout, x.Stderr = cmd.Stdout, cmd.Stderr
	if err := x.Start(); err != nil {
		return err
	}
	go func() {
		err := x.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			cmd.SetExited(0)
		case errors.As(err, &ee):
			cmd.SetExited(ee.ExitCode())
		default:
			cmd.SetExited(255)
		}
	}()
	return nil
}

func (c *bwrapComm) Upload(dst string, r io.Reader, _ *os.FileInfo) error {
	p := filepath.Join(c.root, dst)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *bwrapComm) UploadDir(string, string, []string) error   { return errors.New("not supported") }
func (c *bwrapComm) Download(string, io.Writer) error           { return errors.New("not supported") }
func (c *bwrapComm) DownloadDir(string, string, []string) error { return errors.New("not supported") }

func machineRoot(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bwrap not found: apt-get install bubblewrap (make deps installs it)")
	}
	root := t.TempDir()
	for _, d := range []string{"usr", "proc", "dev", "tmp", "etc", "opt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "lib", "lib64", "sbin"} {
		if err := os.Symlink("usr/"+d, filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// snapshot lists the paths under the given roots of a tree: type, symlink
// target or content.
func snapshot(t *testing.T, root string, under ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range under {
		filepath.WalkDir(filepath.Join(root, u), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				out[rel] = "link " + target
			case d.IsDir():
				out[rel] = "dir"
			default:
				data, _ := os.ReadFile(p)
				fi, _ := d.Info()
				out[rel] = "file " + fi.Mode().Perm().String()[3:4] + " " + string(data)
			}
			return nil
		})
	}
	return out
}

// TestProvisionInstallsLikeTheOfflineBuilder runs the provisioner against
// a machine that is a folder, and compares what it installed with what the
// offline builder's overlay.InstallBundle installs from the same bundle.
func TestProvisionInstallsLikeTheOfflineBuilder(t *testing.T) {
	b := testBundle(t)
	var p Provisioner
	if err := p.Prepare(map[string]interface{}{"bundle": b, "role": "master"}); err != nil {
		t.Fatal(err)
	}
	root := machineRoot(t)
	var out bytes.Buffer
	ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &out}
	if err := p.Provision(context.Background(), ui, &bwrapComm{t: t, root: root}, nil); err != nil {
		t.Fatalf("provision: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "installed at /opt/cluster as master") {
		t.Errorf("output: %s", out.String())
	}

	want := t.TempDir()
	f, _ := os.Open(b)
	defer f.Close()
	tr, err := openTarForTest(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := overlay.NewTree(want).InstallBundle(tr, overlay.HostLayout{Prefix: "/opt/cluster", Role: "master"}); err != nil {
		t.Fatal(err)
	}
	got, exp := snapshot(t, root, "opt", "etc"), snapshot(t, want, "opt", "etc")
	var diffs []string
	for k, v := range exp {
		if got[k] != v {
			diffs = append(diffs, k+": got "+got[k]+", want "+v)
		}
	}
	for k, v := range got {
		if _, ok := exp[k]; !ok {
			diffs = append(diffs, k+": extra "+v)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("provisioned tree differs from the offline install:\n%s", strings.Join(diffs, "\n"))
	}
	if len(exp) < 10 || exp["etc/cluster/role"] != "file - master\n" || exp["etc/systemd/system/multi-user.target.wants/cluster.target"] != "link /etc/systemd/system/cluster.target" {
		t.Errorf("offline install looks wrong: %v", exp)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp/imagebuilder-bundle")); !os.IsNotExist(err) {
		t.Errorf("staging directory left on the machine: %v", err)
	}

	// A second run refuses: the prefix is populated, and says so.
	out.Reset()
	err = p.Provision(context.Background(), ui, &bwrapComm{t: t, root: root}, nil)
	if err == nil || !strings.Contains(out.String(), "prefix /opt/cluster is already populated") {
		t.Errorf("second install: %v\n%s", err, out.String())
	}
}

func TestProvisionRefusesABundleWithoutConfig(t *testing.T) {
	b := testBundle(t)
	raw := rebundleWithoutConfig(t, b)
	var p Provisioner
	if err := p.Prepare(map[string]interface{}{"bundle": raw}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &out, ErrorWriter: &out}
	root := machineRoot(t)
	err := p.Provision(context.Background(), ui, &bwrapComm{t: t, root: root}, nil)
	if err == nil || !strings.Contains(err.Error(), "carries no cluster configuration") {
		t.Fatalf("want refusal, got %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Errorf("something was uploaded before the refusal: %v", ents)
	}
}
