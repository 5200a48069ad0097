package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEtcdArgs(t *testing.T) {
	args, err := etcdArgs("192.168.76.12", "192.168.76.11 192.168.76.12", "lab", "/var/lib/clusterd/etcd")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, w := range []string{
		"--name 192.168.76.12",
		"--listen-peer-urls http://192.168.76.12:2380",
		"--listen-client-urls http://192.168.76.12:2379,http://127.0.0.1:2379",
		"--advertise-client-urls http://192.168.76.12:2379",
		"--initial-cluster 192.168.76.11=http://192.168.76.11:2380,192.168.76.12=http://192.168.76.12:2380",
		"--initial-cluster-state new --initial-cluster-token lab",
		"--data-dir /var/lib/clusterd/etcd",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("etcd args lack %q: %s", w, got)
		}
	}
	if strings.Contains(got, "--election-timeout") || strings.Contains(got, "--heartbeat-interval") {
		t.Errorf("two masters get shorter raft timing: %s", got)
	}
	one, err := etcdArgs("192.168.76.11", "192.168.76.11", "lab", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(one, " "); !strings.Contains(got, "--heartbeat-interval 50 --election-timeout 250") {
		t.Errorf("a single master keeps etcd's default raft timing: %s", got)
	}
	if _, err := etcdArgs("10.0.0.9", "192.168.76.11", "lab", "/d"); err == nil || !strings.Contains(err.Error(), "not in MASTER_LIST") {
		t.Errorf("a master outside MASTER_LIST: %v", err)
	}
	if _, err := etcdArgs("192.168.76.11", "192.168.76.11 nope", "lab", "/d"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("bad MASTER_LIST: %v", err)
	}
}

// fakeEtcd is the part of etcd's v3 JSON gateway clusterd uses, in memory,
// with leases that expire.
type fakeEtcd struct {
	mu      sync.Mutex
	kv      map[string]string // key -> value
	leaseOf map[string]int64
	expires map[int64]time.Time
	next    int64
	members []etcdMember
}

func newFakeEtcd(t *testing.T, ip string) (*fakeEtcd, string) {
	t.Helper()
	f := &fakeEtcd{kv: map[string]string{}, leaseOf: map[string]int64{}, expires: map[int64]time.Time{}}
	mux := http.NewServeMux()
	decode := func(r *http.Request, v any) { json.NewDecoder(r.Body).Decode(v) }
	unb64 := func(s string) string { b, _ := base64.StdEncoding.DecodeString(s); return string(b) }
	mux.HandleFunc("POST /v3/lease/grant", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ TTL int64 }
		decode(r, &req)
		f.mu.Lock()
		f.next++
		id := f.next
		f.expires[id] = time.Now().Add(time.Duration(req.TTL) * time.Second)
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"ID": strconv.FormatInt(id, 10), "TTL": strconv.FormatInt(req.TTL, 10)})
	})
	mux.HandleFunc("POST /v3/kv/put", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Key, Value, Lease string }
		decode(r, &req)
		id, _ := strconv.ParseInt(req.Lease, 10, 64)
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.expires[id]; !ok && id != 0 {
			http.Error(w, `{"error":"etcdserver: requested lease not found"}`, http.StatusBadRequest)
			return
		}
		f.kv[unb64(req.Key)], f.leaseOf[unb64(req.Key)] = unb64(req.Value), id
		w.Write([]byte(`{"header":{}}`))
	})
	mux.HandleFunc("POST /v3/kv/range", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Key string }
		decode(r, &req)
		k := unb64(req.Key)
		f.mu.Lock()
		defer f.mu.Unlock()
		v, ok := f.kv[k]
		if ok && f.leaseOf[k] != 0 && time.Now().After(f.expires[f.leaseOf[k]]) {
			ok = false
		}
		if !ok {
			w.Write([]byte(`{"header":{}}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"kvs": []map[string]string{{"key": req.Key, "value": base64.StdEncoding.EncodeToString([]byte(v))}}, "count": "1"})
	})
	mux.HandleFunc("POST /v3/cluster/member/list", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"members": f.members})
	})
	srv := httptest.NewUnstartedServer(mux)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, etcdClientPort))
	if err != nil {
		t.Skipf("cannot listen on %s:%s for the fake etcd: %v", ip, etcdClientPort, err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// TestEtcdRegisterAndCheck runs the registration loop against a fake etcd
// and the join checks of both roles.
func TestEtcdRegisterAndCheck(t *testing.T) {
	// 127.0.0.3 stands for a master; its client port is the fixed 2379.
	f, _ := newFakeEtcd(t, "127.0.0.3")
	client := &http.Client{Timeout: time.Second}
	ctx := context.Background()

	if _, err := checkEtcd(ctx, client, "agent", "127.0.0.4", "127.0.0.3"); err == nil || !strings.Contains(err.Error(), "holds no key /cluster/members/127.0.0.4") {
		t.Errorf("agent check before registering: %v", err)
	}
	if _, err := checkEtcd(ctx, client, "master", "127.0.0.3", "127.0.0.3"); err == nil || !strings.Contains(err.Error(), "does not list 127.0.0.3") {
		t.Errorf("master check before etcd lists it: %v", err)
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, self := range []registration{{IP: "127.0.0.4", Role: "agent"}, {IP: "127.0.0.3", Role: "master"}} {
		r := registrar{client: client, self: self, every: 50 * time.Millisecond, minBackoff: 10 * time.Millisecond, maxBackoff: 20 * time.Millisecond, log: testLog(t)}
		go keepRegistered(rctx, r, []string{"http://127.0.0.1:1", clientURL("127.0.0.3")})
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := checkEtcd(ctx, client, "agent", "127.0.0.4", "10.255.255.1 127.0.0.3")
		if err == nil {
			if !strings.Contains(out, "/cluster/members/127.0.0.4 (agent)") {
				t.Errorf("check output: %s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent never registered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := checkEtcd(ctx, client, "agent_public", "127.0.0.4", "127.0.0.3"); err == nil || !strings.Contains(err.Error(), "as agent, not agent_public") {
		t.Errorf("wrong role: %v", err)
	}
	// A master must be in etcd's member list, started.
	f.mu.Lock()
	f.members = []etcdMember{{Name: "127.0.0.3", PeerURLs: []string{"http://127.0.0.3:2380"}}}
	f.mu.Unlock()
	if _, err := checkEtcd(ctx, client, "master", "127.0.0.3", "127.0.0.3"); err == nil {
		t.Errorf("master check passed for an unstarted member")
	}
	f.mu.Lock()
	f.members[0].ClientURLs = []string{"http://127.0.0.3:2379"}
	f.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; {
		out, err := checkEtcd(ctx, client, "master", "127.0.0.3", "127.0.0.3")
		if err == nil {
			if !strings.Contains(out, "member list") {
				t.Errorf("master check: %q", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("master check: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The registration lives only while it is kept alive.
	cancel()
	time.Sleep(time.Second)
	f.mu.Lock()
	for id := range f.expires {
		f.expires[id] = time.Now().Add(-time.Second)
	}
	f.mu.Unlock()
	if _, err := checkEtcd(ctx, client, "agent", "127.0.0.4", "127.0.0.3"); err == nil {
		t.Errorf("registration outlived its lease")
	}
}

// TestListenOverride: the credential replaces the client listen URLs, only
// with http://IP:2379 entries; without it the arguments stay.
func TestListenOverride(t *testing.T) {
	args, err := etcdArgs("192.168.76.11", "192.168.76.11", "lab", "/d")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	missing := filepath.Join(dir, "none")
	if got, err := listenOverride(args, missing); err != nil || !slices.Equal(got, args) {
		t.Errorf("no credential: %v %v", got, err)
	}
	cred := filepath.Join(dir, "cred")
	os.WriteFile(cred, []byte("http://0.0.0.0:2379\n"), 0o600)
	got, err := listenOverride(args, cred)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(got, "--listen-client-urls")
	if i < 0 || got[i+1] != "http://0.0.0.0:2379" || !slices.Contains(got, "http://192.168.76.11:2379") {
		t.Errorf("override: %q", got)
	}
	for _, bad := range []string{"http://0.0.0.0:2380", "https://1.2.3.4:2379", "http://example:2379", "http://1.2.3.4:2379,x"} {
		os.WriteFile(cred, []byte(bad), 0o600)
		if _, err := listenOverride(args, cred); err == nil || !strings.Contains(err.Error(), cred) {
			t.Errorf("%q: %v, want an error naming the credential", bad, err)
		}
	}
}
