package packages_test

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"imagebuilder/pkgbuild"
)

// checkTCPWait runs cluster-tcpwait (C, from a dir source): static; exit 0 for
// a listening port, 1 naming the address for a closed one, 2 for bad usage.
func checkTCPWait(t *testing.T, res pkgbuild.Result) {
	bin := filepath.Join(extract(t, res.Tarball), "bin", "cluster-tcpwait")
	assertStatic(t, bin)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	defer l.Close()
	c, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := strconv.Itoa(c.Addr().(*net.TCPAddr).Port)
	c.Close()
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"127.0.0.1", open, "5"}, 0, ""},
		{[]string{"127.0.0.1", closed, "0.3"}, 1, "127.0.0.1 port " + closed + " not accepting after 0.3 s: Connection refused"},
		{[]string{"127.0.0.1"}, 2, "usage: cluster-tcpwait IP PORT"},
		{[]string{"localhost", open}, 2, "localhost is not an IP address"},
		{[]string{"127.0.0.1", "70000"}, 2, "port 70000"},
	}
	for _, tc := range tests {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(string(out), tc.out) {
			t.Errorf("cluster-tcpwait %v: exit %d %q, want %d %q", tc.args, code, out, tc.code, tc.out)
		}
	}
}
