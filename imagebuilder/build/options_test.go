package build

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.tar")
	bundle := filepath.Join(dir, "cb.tar.zst")
	os.WriteFile(base, nil, 0o644)
	os.WriteFile(bundle, nil, 0o644)
	t.Setenv("PATH", dir) // no imagebuilder-installer anywhere
	o := Options{Base: base, Bundle: bundle, OutDir: dir, Formats: []string{"raw", "floppy", "iso"},
		Boot: "legacy", Console: "ttyS0 115200", OCIPush: "127.0.0.1:5000/x"}
	err := o.validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`format "floppy"`, "format iso: no installer binary", "oci-push: needs --format oci", `boot "legacy"`, `console "ttyS0 115200"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestValidateNormalizesFormats(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.tar")
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.Close()
	os.WriteFile(base, tb.Bytes(), 0o644)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	o := Options{Base: base, Bundle: base, OutDir: dir, Formats: []string{"vhd", "tar", "raw", "tar"}}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.Formats, ","); got != "tar,raw,vhd" {
		t.Errorf("formats %s, want pipeline order without duplicates", got)
	}
	if o.Boot != BootHybrid || o.SourceDateEpoch != 1700000000 {
		t.Errorf("defaults: boot %q epoch %d", o.Boot, o.SourceDateEpoch)
	}
	for _, tc := range []struct{ console, cmdline, want string }{
		{"", "", "console=tty0 console=ttyS0,115200 no_timer_check"},
		{"ttyS1,9600", "quiet", "console=tty0 console=ttyS1,9600 no_timer_check quiet"},
		{"", "console=hvc0", "console=hvc0"},
		{"none", "quiet", "quiet"},
	} {
		o := Options{Console: tc.console, KernelCmdline: tc.cmdline}
		if got := o.cmdline(); got != tc.want {
			t.Errorf("console %q cmdline %q: %q, want %q", tc.console, tc.cmdline, got, tc.want)
		}
	}
}
