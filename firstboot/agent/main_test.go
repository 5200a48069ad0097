package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain_IPDetectEndToEnd(t *testing.T) {
	// The real interface list: 127.0.0.1 is on lo on every Linux host.
	root, prefix := t.TempDir(), t.TempDir()
	ipDetect := script(t, filepath.Join(prefix, "etc", "ip-detect"), "echo 127.0.0.1")
	writeFile(t, filepath.Join(prefix, "etc", "cluster.env"), "CLUSTER_NAME=demo\nIP_DETECT="+ipDetect+"\nIP_DETECT_TIMEOUT=5\n", 0o644)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--root", root, "ipdetect", "--prefix", prefix, "--retry-min", "10ms"}, &stdout, &stderr, "/nonexistent")
	if code != 0 {
		t.Fatalf("exit %d; stdout %q stderr %q", code, stdout.String(), stderr.String())
	}
	if want := "cluster-firstboot: detected IP 127.0.0.1 (ip-detect " + ipDetect + ")\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	b, err := os.ReadFile(filepath.Join(root, "run", "cluster", "ip.env"))
	if err != nil || string(b) != "DETECTED_IP=127.0.0.1\n" {
		t.Errorf("ip.env = %q, %v", b, err)
	}
}

func TestMain_Failures(t *testing.T) {
	root, prefix := t.TempDir(), t.TempDir()
	envFile := filepath.Join(t.TempDir(), "cluster.env")
	ipDetect := script(t, filepath.Join(prefix, "etc", "ip-detect"), "echo 192.0.2.1; echo 192.0.2.2")
	writeFile(t, envFile, "CLUSTER_NAME=demo\nIP_DETECT="+ipDetect+"\n", 0o644)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: "no command given"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "bad flag", args: []string{"join", "--nope"}, wantCode: 2, wantStderr: "flag provided but not defined"},
		{name: "extra args", args: []string{"join", "extra"}, wantCode: 2, wantStderr: "unexpected arguments"},
		{name: "relative prefix", args: []string{"--prefix", "opt", "join"}, wantCode: 2, wantStderr: "not an absolute path"},
		{name: "bad backoff", args: []string{"ipdetect", "--retry-min", "0s"}, wantCode: 2, wantStderr: "--retry-min"},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: "usage: cluster-firstboot"},
		{name: "ipdetect fails", args: []string{"--root", root, "--env", envFile, "ipdetect", "--prefix", prefix,
			"--retry-min", "10ms", "--retry-max", "10ms", "--retry-for", "30ms"},
			wantCode:   1,
			wantStdout: "cluster-firstboot: FAILED: ip-detect " + ipDetect + " gave no usable IP",
			wantStderr: "level=ERROR"},
		{name: "join without role", args: []string{"--root", root, "--env", envFile, "--prefix", prefix, "join"},
			wantCode: 1, wantStdout: "cluster-firstboot: FAILED: no role for this host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tc.args, &stdout, &stderr, DefaultPrefix)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stdout %q stderr %q)", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestMain_FlagPlacement(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want options
	}{
		{name: "defaults", args: []string{"join"},
			want: options{prefix: "/opt/cluster", root: "/", retry: DefaultIPDetectRetry(), poll: DefaultJoinPoll}},
		{name: "common before and after", args: []string{"--prefix", "/p", "join", "--env", "/e", "--root", "/r", "--poll", "5s"},
			want: options{prefix: "/p", env: "/e", root: "/r", retry: DefaultIPDetectRetry(), poll: 5e9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := options{prefix: "/opt/cluster", root: "/", retry: DefaultIPDetectRetry(), poll: DefaultJoinPoll}
			if _, err := o.parse(tc.args, nil); err != nil {
				t.Fatal(err)
			}
			if o != tc.want {
				t.Errorf("options = %+v, want %+v", o, tc.want)
			}
		})
	}
}
