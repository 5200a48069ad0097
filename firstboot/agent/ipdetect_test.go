package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseIPOutput(t *testing.T) {
	tests := []struct {
		name, out, want, err string
	}{
		{name: "ipv4 with newline", out: "10.0.2.15\n", want: "10.0.2.15"},
		{name: "ipv4 without newline", out: "10.0.2.15", want: "10.0.2.15"},
		{name: "crlf", out: "10.0.2.15\r\n", want: "10.0.2.15"},
		{name: "ipv6", out: "fd00::5\n", want: "fd00::5"},
		{name: "ipv4-mapped ipv6 becomes ipv4", out: "::ffff:10.0.2.15\n", want: "10.0.2.15"},
		{name: "surrounding blanks", out: " 10.0.2.15 \n", want: "10.0.2.15"},
		{name: "empty", out: "", err: "got nothing"},
		{name: "only newline", out: "\n", err: "got nothing"},
		{name: "two lines", out: "10.0.2.15\n10.0.2.16\n", err: "got 2 lines"},
		{name: "two newlines", out: "10.0.2.15\n\n", err: "got 2 lines"},
		{name: "two words", out: "10.0.2.15 10.0.2.16\n", err: "got 2 words"},
		{name: "garbage", out: "eth0: no carrier\n", err: "got 3 words"},
		{name: "garbage word", out: "localhost\n", err: "not an IP address"},
		{name: "cidr", out: "10.0.2.15/24\n", err: "not an IP address"},
		{name: "zone", out: "fe80::1%eth0\n", err: "zone"},
		{name: "unspecified", out: "0.0.0.0\n", err: "unspecified"},
		{name: "multicast", out: "224.0.0.1\n", err: "multicast"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip, err := ParseIPOutput(tc.out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseIPOutput(%q) = %v, %v; want error containing %q", tc.out, ip, err, tc.err)
				}
				return
			}
			if err != nil || ip.String() != tc.want {
				t.Fatalf("ParseIPOutput(%q) = %v, %v; want %s", tc.out, ip, err, tc.want)
			}
		})
	}
}

func FuzzParseIPOutput(f *testing.F) {
	for _, s := range []string{"10.0.2.15\n", "fd00::5", "a\nb", "", "::ffff:1.2.3.4", "fe80::1%lo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		ip, err := ParseIPOutput(out)
		if err != nil {
			return
		}
		if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() || ip.IsUnspecified() {
			t.Fatalf("ParseIPOutput(%q) accepted %v", out, ip)
		}
		if again, err := ParseIPOutput(ip.String() + "\n"); err != nil || again != ip {
			t.Fatalf("round trip of %v: %v, %v", ip, again, err)
		}
	})
}

func TestIPDetect(t *testing.T) {
	tests := []struct {
		name    string
		script  string // body of ip-detect
		timeout string // IP_DETECT_TIMEOUT
		wantIP  string // "" means failure expected
		// wantErr are substrings of the error, which must also name the script.
		wantErr []string
		// minAttempts is the least number of runs expected.
		minAttempts int
		// retryFor overrides the test host's 150ms retry budget.
		retryFor time.Duration
	}{
		{name: "success", script: `echo 10.0.2.15`, wantIP: "10.0.2.15", minAttempts: 1},
		{name: "success ipv6 without newline", script: `printf fd00::5`, wantIP: "fd00::5", minAttempts: 1},
		{name: "two lines", script: "echo 10.0.2.15; echo 10.0.2.16",
			wantErr: []string{`printed "10.0.2.15\n10.0.2.16\n"`, "got 2 lines"}, minAttempts: 1},
		{name: "garbage", script: `echo no-address-here`,
			wantErr: []string{`"no-address-here\n"`, "not an IP address"}, minAttempts: 1},
		{name: "ip not on this host", script: `echo 192.0.2.7`,
			wantErr: []string{`"192.0.2.7\n"`, "not assigned to any local interface", "10.0.2.15"}, minAttempts: 1},
		{name: "non-zero exit", script: "echo partial; echo broken >&2; exit 3",
			wantErr: []string{"exit status 3", `"partial\n" on stdout`, `"broken\n" on stderr`}, minAttempts: 1},
		{name: "hangs", script: "echo 10.0.2.15; exec sleep 30", timeout: "1",
			wantErr: []string{"timed out after 1s", `"10.0.2.15\n"`}, minAttempts: 1},
		{name: "hanging child keeps the pipe", script: "sleep 30 & wait", timeout: "1",
			wantErr: []string{"timed out after 1s"}, minAttempts: 1},
		{name: "huge output is truncated", script: `yes 10.0.2.15 | head -c 100000`,
			wantErr: []string{"(100000 bytes in all)"}, minAttempts: 1},
		{name: "succeeds on third attempt", script: `n=$(cat "$0.count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$0.count"
[ $n -ge 3 ] && echo 10.0.2.15 || echo not-yet`, wantIP: "10.0.2.15", minAttempts: 3, retryFor: 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t)
			if tc.retryFor > 0 {
				h.agent.IPDetectRetry.Total = tc.retryFor
			}
			ipDetect := filepath.Join(h.prefix, "etc", "ip-detect")
			// Count runs beside the script, whatever it does.
			script(t, ipDetect, `echo x >> "$0.runs"`+"\n"+tc.script)
			timeout := tc.timeout
			if timeout == "" {
				timeout = "5"
			}
			h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect, "IP_DETECT_TIMEOUT="+timeout)

			start := time.Now()
			err := h.agent.IPDetect(context.Background())
			if elapsed := time.Since(start); elapsed > 8*time.Second {
				t.Errorf("IPDetect took %s; the retry budget is 150ms", elapsed)
			}
			runs := strings.Count(readOr(t, ipDetect+".runs"), "x")
			if runs < tc.minAttempts {
				t.Errorf("ip-detect ran %d times, want at least %d", runs, tc.minAttempts)
			}
			if tc.wantIP == "" {
				if err == nil {
					t.Fatalf("IPDetect succeeded, want failure")
				}
				for _, want := range append(tc.wantErr, "ip-detect "+ipDetect) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				if got := h.read(IPEnvFile); got != "<missing>" {
					t.Errorf("ip.env written on failure: %q", got)
				}
				if h.stdout.Len() != 0 {
					t.Errorf("console output on failure: %q", h.stdout)
				}
				return
			}
			if err != nil {
				t.Fatalf("IPDetect: %v", err)
			}
			if got, want := h.read(IPEnvFile), "DETECTED_IP="+tc.wantIP+"\n"; got != want {
				t.Errorf("ip.env = %q, want %q", got, want)
			}
			wantLine := "cluster-firstboot: detected IP " + tc.wantIP + " (ip-detect " + ipDetect + ")\n"
			if h.stdout.String() != wantLine {
				t.Errorf("console = %q, want %q", h.stdout, wantLine)
			}
		})
	}
}

func TestIPDetectBackoffIsBounded(t *testing.T) {
	h := newTestHost(t)
	h.agent.IPDetectRetry = Backoff{Min: 20 * time.Millisecond, Max: 80 * time.Millisecond, Total: time.Second}
	ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), `date +%s.%N >> "$0.runs"; exit 1`)
	h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect)
	start := time.Now()
	err := h.agent.IPDetect(context.Background())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("IPDetect succeeded with a failing script")
	}
	// Waits 20, 40, 80, 80, 80, ... ms: at most 14 runs fit in the budget
	// (fewer on a loaded machine), and the loop stops near its end.
	runs := strings.Count(readOr(t, ipDetect+".runs"), "\n")
	if runs < 2 || runs > 14 {
		t.Errorf("ip-detect ran %d times in a 1s budget with 20..80ms waits, want 2..14", runs)
	}
	if elapsed < 900*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("IPDetect gave up after %s, want about 1s", elapsed)
	}
	if !strings.Contains(err.Error(), "attempt(s)") {
		t.Errorf("error %q does not count attempts", err)
	}
}

func TestIPDetectCancelled(t *testing.T) {
	h := newTestHost(t)
	h.agent.IPDetectRetry = Backoff{Min: time.Hour, Max: time.Hour, Total: 10 * time.Hour}
	ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), `exit 1`)
	h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := h.agent.IPDetect(ctx)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("IPDetect = %v, want interrupted", err)
	}
}

func TestIPDetectAfterJoin(t *testing.T) {
	tests := []struct {
		name     string
		ipFile   string // content of /var/lib/cluster/ip; "" for none
		marker   string // content of the joined marker; "" for none
		detected string
		wantErr  string
	}{
		{name: "not joined, no record", detected: "10.0.2.15"},
		{name: "not joined, other IP recorded", ipFile: "10.0.2.16\n", detected: "10.0.2.15"},
		{name: "joined, same IP", ipFile: "10.0.2.15\n", marker: "IP=10.0.2.15\nROLE=agent\n", detected: "10.0.2.15"},
		{name: "joined, same ipv6 spelled differently", ipFile: "fd00:0::5\n", marker: "IP=fd00::5\n", detected: "fd00::5"},
		{name: "joined, IP changed", ipFile: "10.0.2.16\n", marker: "IP=10.0.2.16\nROLE=agent\n", detected: "10.0.2.15",
			wantErr: "IP changed after join: was 10.0.2.16, now 10.0.2.15; refusing"},
		{name: "joined, no IP file, marker differs", marker: "IP=10.0.2.16\n", detected: "10.0.2.15",
			wantErr: "IP changed after join: was 10.0.2.16, now 10.0.2.15; refusing"},
		{name: "joined, no IP file, marker agrees", marker: "IP=10.0.2.15\n", detected: "10.0.2.15"},
		{name: "joined, IP file garbage", ipFile: "nonsense\n", marker: "IP=10.0.2.15\n", detected: "10.0.2.15",
			wantErr: "holds no valid IP"},
		{name: "joined, marker unreadable", ipFile: "10.0.2.15\n", marker: "no equals sign\n", detected: "10.0.2.15",
			wantErr: "reading joined marker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t)
			ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), "echo "+tc.detected)
			h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+ipDetect)
			if tc.ipFile != "" {
				h.write(StateIPFile, tc.ipFile)
			}
			if tc.marker != "" {
				h.write(JoinedFile, tc.marker)
			}
			err := h.agent.IPDetect(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("IPDetect = %v, want error containing %q", err, tc.wantErr)
				}
				if got := h.read(IPEnvFile); got != "<missing>" {
					t.Errorf("ip.env written although refused: %q", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("IPDetect: %v", err)
			}
			if got := h.read(IPEnvFile); got != "DETECTED_IP="+tc.detected+"\n" {
				t.Errorf("ip.env = %q", got)
			}
		})
	}
}

func TestIPDetectConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{name: "no env file", want: "reading env file"},
		{name: "relative ip-detect", lines: []string{"IP_DETECT=ip-detect"}, want: "not an absolute path"},
		{name: "bad timeout", lines: []string{"IP_DETECT=/x", "IP_DETECT_TIMEOUT=soon"}, want: `IP_DETECT_TIMEOUT: "soon" is not a positive number`},
		{name: "zero timeout", lines: []string{"IP_DETECT=/x", "IP_DETECT_TIMEOUT=0"}, want: "not a positive number"},
		{name: "missing script", lines: []string{"IP_DETECT=/nonexistent/ip-detect"}, want: "could not run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t)
			if tc.lines != nil {
				h.clusterEnv(tc.lines...)
			}
			err := h.agent.IPDetect(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("IPDetect = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestIPDetectDefaultScriptPath(t *testing.T) {
	h := newTestHost(t)
	ipDetect := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), "echo 10.0.2.15")
	h.clusterEnv("CLUSTER_NAME=test")
	if err := h.agent.IPDetect(context.Background()); err != nil {
		t.Fatalf("IPDetect: %v", err)
	}
	if !strings.Contains(h.stdout.String(), "(ip-detect "+ipDetect+")") {
		t.Errorf("console %q does not name %s", h.stdout, ipDetect)
	}
}

// readOr returns a file's content or "" when it cannot be read.
func readOr(t *testing.T, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestIPDetectCredentialOverride: a host whose bundled ip-detect fails
// recovers with the cluster.ip-detect credential, which replaces the
// script without touching the image; an empty credential is refused.
func TestIPDetectCredentialOverride(t *testing.T) {
	h := newTestHost(t)
	bundled := script(t, filepath.Join(h.prefix, "etc", "ip-detect"), "echo garbage")
	h.clusterEnv("CLUSTER_NAME=test", "IP_DETECT="+bundled)
	if err := h.agent.IPDetect(context.Background()); err == nil {
		t.Fatal("the bundled ip-detect prints garbage, yet IPDetect succeeded")
	}
	h.write(filepath.Join(SystemCredentialsDir, IPDetectCredential), "#!/bin/sh\necho 10.0.2.15\n")
	if err := h.agent.IPDetect(context.Background()); err != nil {
		t.Fatalf("IPDetect with the credential: %v", err)
	}
	if got := h.read(IPEnvFile); got != "DETECTED_IP=10.0.2.15\n" {
		t.Errorf("ip.env = %q", got)
	}
	if fi, err := os.Stat(h.agent.Paths.Host(IPDetectOverrideFile)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("override script: %v %v", fi, err)
	}
	if out := h.stdout.String(); !strings.Contains(out, "ip-detect from credential cluster.ip-detect replaces "+bundled) || !strings.Contains(out, "(ip-detect "+h.agent.Paths.Host(IPDetectOverrideFile)+")") {
		t.Errorf("console %q does not say the credential replaced %s", out, bundled)
	}
	if b := readOr(t, bundled); b != "#!/bin/sh\necho garbage\n" {
		t.Errorf("the bundled script changed: %q", b)
	}
	// The #! line's argument reaches the interpreter.
	h.write(filepath.Join(SystemCredentialsDir, IPDetectCredential), "#!/bin/sh -e\necho 10.0.2.15\n")
	if err := h.agent.IPDetect(context.Background()); err != nil {
		t.Fatalf("IPDetect with a #!/bin/sh -e credential: %v", err)
	}
	for body, want := range map[string]string{" \n": "is empty", "echo 10.0.2.15\n": "first line is #!", "#!sh\necho 10.0.2.15\n": "absolute interpreter"} {
		h.write(filepath.Join(SystemCredentialsDir, IPDetectCredential), body)
		if err := h.agent.IPDetect(context.Background()); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), IPDetectCredential) {
			t.Errorf("credential %q: IPDetect = %v, want an error naming the credential saying %q", body, err, want)
		}
	}
}
