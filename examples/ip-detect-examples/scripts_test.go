package ipdetectexamples

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runScript runs an example with env and returns stdout, stderr and
// whether it exited 0.
func runScript(t *testing.T, name string, env ...string) (string, string, bool) {
	t.Helper()
	cmd := exec.Command("./" + name)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err == nil
}

// fakeMetadata serves the endpoints of the three clouds, each insisting on
// its own headers, answering ip (which may be garbage).
func fakeMetadata(t *testing.T, ip string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "missing ttl", http.StatusBadRequest)
			return
		}
		w.Write([]byte("TOKEN123"))
	})
	mux.HandleFunc("GET /latest/meta-data/local-ipv4", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-aws-ec2-metadata-token") != "TOKEN123" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(ip))
	})
	mux.HandleFunc("GET /computeMetadata/v1/instance/network-interfaces/0/ip", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "missing Metadata-Flavor", http.StatusForbidden)
			return
		}
		w.Write([]byte(ip))
	})
	mux.HandleFunc("GET /metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Header.Get("Metadata") != "true" || q.Get("format") != "text" || q.Get("api-version") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Write([]byte(ip))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestCloudMetadataScripts(t *testing.T) {
	good := fakeMetadata(t, "172.31.5.9")
	garbage := fakeMetadata(t, "<html>not found</html>")
	for _, name := range []string{"aws", "gce", "azure"} {
		t.Run(name, func(t *testing.T) {
			out, errs, ok := runScript(t, name, "METADATA_URL="+good.URL)
			if !ok || out != "172.31.5.9\n" {
				t.Errorf("good endpoint: ok=%v stdout %q stderr %q", ok, out, errs)
			}
			out, errs, ok = runScript(t, name, "METADATA_URL="+garbage.URL)
			if ok || out != "" || !strings.Contains(errs, "not an IPv4 address") {
				t.Errorf("garbage answer: ok=%v stdout %q stderr %q", ok, out, errs)
			}
			// Nothing listens here any more.
			dead := httptest.NewServer(http.NotFoundHandler())
			dead.Close()
			out, errs, ok = runScript(t, name, "METADATA_URL="+dead.URL)
			if ok || out != "" {
				t.Errorf("no service: ok=%v stdout %q stderr %q", ok, out, errs)
			}
		})
	}
	// Each script sends its cloud's headers: asking another cloud's
	// endpoint layout fails with the service's status, not a wrong IP.
	out, errs, ok := runScript(t, "gce", "METADATA_URL="+good.URL+"/wrong")
	if !ok || out != "172.31.5.9\n" {
		t.Errorf("a path in METADATA_URL is ignored (host:port only): ok=%v %q %q", ok, out, errs)
	}
}

// fakeIP puts an "ip" command first in PATH that prints canned answers.
func fakeIP(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ip"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + ":" + os.Getenv("PATH")
}

func TestRouteToMaster(t *testing.T) {
	path := fakeIP(t, `case "$*" in
"-4 route get 192.168.76.11") echo "192.168.76.11 dev enp0s4 src 192.168.76.21 uid 0"; echo "    cache";;
"-4 route get 10.99.0.1") exit 2;;
*) echo "unexpected: $*" >&2; exit 1;;
esac
`)
	out, errs, ok := runScript(t, "route-to-master", "PATH="+path, "MASTER_LIST=10.99.0.1 192.168.76.11")
	if !ok || out != "192.168.76.21\n" {
		t.Errorf("ok=%v stdout %q stderr %q", ok, out, errs)
	}
	out, errs, ok = runScript(t, "route-to-master", "PATH="+path, "MASTER_LIST=10.99.0.1")
	if ok || out != "" || !strings.Contains(errs, "no route to any master") {
		t.Errorf("unreachable masters: ok=%v stdout %q stderr %q", ok, out, errs)
	}
	// MASTER_LIST comes from cluster.env when not in the environment.
	env := filepath.Join(t.TempDir(), "cluster.env")
	os.WriteFile(env, []byte("MASTER_LIST='192.168.76.11'\n"), 0o644)
	out, errs, ok = runScript(t, "route-to-master", "PATH="+path, "CLUSTER_ENV="+env)
	if !ok || out != "192.168.76.21\n" {
		t.Errorf("from cluster.env: ok=%v stdout %q stderr %q", ok, out, errs)
	}
}

func TestNamedInterface(t *testing.T) {
	path := fakeIP(t, `case "$*" in
"-4 -o addr show dev enp0s4 scope global") echo "3: enp0s4    inet 192.168.76.21/24 brd 192.168.76.255 scope global enp0s4\       valid_lft forever preferred_lft forever";;
"-4 -o addr show dev enp0s3 scope global") ;;
*) echo "Device does not exist" >&2; exit 1;;
esac
`)
	out, errs, ok := runScript(t, "interface", "PATH="+path, "IP_DETECT_INTERFACE=enp0s4")
	if !ok || out != "192.168.76.21\n" {
		t.Errorf("ok=%v stdout %q stderr %q", ok, out, errs)
	}
	for _, ifname := range []string{"enp0s3", "eth9"} {
		out, errs, ok = runScript(t, "interface", "PATH="+path, "IP_DETECT_INTERFACE="+ifname)
		if ok || out != "" || !strings.Contains(errs, ifname+" has no global IPv4 address") {
			t.Errorf("%s: ok=%v stdout %q stderr %q", ifname, ok, out, errs)
		}
	}
}
