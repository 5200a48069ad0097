package pkgbuild

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/pkgbuild/ocicache/ocitest"
)

// TestRemoteCache: builder A builds and pushes; builder B, with an empty
// store, pulls everything and builds nothing; a corrupt remote entry and an
// unreachable registry fall back to building.
func TestRemoteCache(t *testing.T) {
	requireBwrap(t)
	reg := ocitest.StartRegistry(t)
	cacheURL := "oci://" + reg.Addr + "/imagebuilder/packages"
	r := newRepo(t)
	r.pkg("one", `{}`, "mkdir -p $OUT/share; echo one > $OUT/share/x\n", nil)
	r.pkg("two", `{"requires": ["one"]}`, "mkdir -p $OUT/share; cp $ONE_PATH/share/x $OUT/share/y\n", nil)
	withCache := func(u string) func(*Options) { return func(o *Options) { o.CacheURL = u } }
	ctx := context.Background()

	logA := &lockedBuffer{}
	a, err := r.builder(t.TempDir(), logA, withCache(cacheURL)).Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logA.String(), "pushed to the remote cache"); n != 2 {
		t.Errorf("builder A pushed %d packages, want 2:\n%s", n, logA)
	}

	storeB := filepath.Join(t.TempDir(), "not", "yet") // made on demand
	logB := &lockedBuffer{}
	b, err := r.builder(storeB, logB, withCache(cacheURL)).Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range b {
		if !res.Pulled || !res.Cached || res.ID != a[i].ID || res.SHA256 != a[i].SHA256 {
			t.Errorf("builder B %s: %+v", res.Name, res)
		}
		if _, err := (Store{Dir: storeB}).Lookup(res.ID); err != nil {
			t.Errorf("pulled %s does not verify in the store: %v", res.ID, err)
		}
	}
	if strings.Contains(logB.String(), "msg=building") {
		t.Errorf("builder B built something:\n%s", logB)
	}
	// A second run of B is a plain local cache hit.
	logB2 := &lockedBuffer{}
	if _, err := r.builder(storeB, logB2, withCache(cacheURL)).Build(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Count(logB2.String(), "cache hit") != 2 || strings.Contains(logB2.String(), "pushed") || strings.Contains(logB2.String(), "pulled") {
		t.Errorf("second run of B:\n%s", logB2)
	}
	// A store filled without the cache shares its packages with an empty one.
	reg2 := ocitest.StartRegistry(t)
	logB3 := &lockedBuffer{}
	if _, err := r.builder(storeB, logB3, withCache("oci://"+reg2.Addr+"/other")).Build(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Count(logB3.String(), "pushed to the remote cache") != 2 {
		t.Errorf("local hits not shared with an empty cache:\n%s", logB3)
	}
	logD := &lockedBuffer{}
	d, err := r.builder(t.TempDir(), logD, withCache("oci://"+reg2.Addr+"/other")).Build(ctx)
	if err != nil || !d[0].Pulled || !d[1].Pulled {
		t.Errorf("pull from the second registry: %v %+v\n%s", err, d, logD)
	}

	t.Run("corrupt remote entry", func(t *testing.T) {
		one := a[0]
		data := filepath.Join(reg.Storage, "docker/registry/v2/blobs/sha256", one.SHA256[:2], one.SHA256, "data")
		if err := os.WriteFile(data, []byte("not the package"), 0o644); err != nil {
			t.Fatal(err)
		}
		store := t.TempDir()
		log := &lockedBuffer{}
		c, err := r.builder(store, log, withCache(cacheURL)).Build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c[0].Pulled || c[0].Cached || c[0].SHA256 != one.SHA256 || !c[1].Pulled {
			t.Errorf("after corruption: %+v", c)
		}
		if !strings.Contains(log.String(), "remote cache entry unusable; building") {
			t.Errorf("no warning:\n%s", log)
		}
		if _, err := (Store{Dir: store}).Lookup(one.ID); err != nil {
			t.Errorf("rebuilt entry: %v", err)
		}
		// The builder uploaded the good tarball again, but the registry
		// keeps its first copy of a digest: the warning names the blob.
		if !strings.Contains(log.String(), "repairing the remote cache entry failed") || !strings.Contains(log.String(), "still serves other bytes for blob sha256:"+one.SHA256) {
			t.Errorf("no repair warning naming the blob:\n%s", log)
		}
		// With the bad copy removed from the registry's storage, the next
		// builder's push restores the entry and a third builder pulls it.
		if err := os.RemoveAll(filepath.Dir(data)); err != nil {
			t.Fatal(err)
		}
		logR := &lockedBuffer{}
		rb, err := r.builder(t.TempDir(), logR, withCache(cacheURL)).Build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rb[0].Pulled || !strings.Contains(logR.String(), "pushed to the remote cache") {
			t.Errorf("after removing the bad copy: %+v\n%s", rb, logR)
		}
		logP := &lockedBuffer{}
		p, err := r.builder(t.TempDir(), logP, withCache(cacheURL)).Build(ctx)
		if err != nil || !p[0].Pulled || !p[1].Pulled || p[0].SHA256 != one.SHA256 {
			t.Errorf("pull after the entry was restored: %v %+v\n%s", err, p, logP)
		}
	})
	t.Run("unreachable registry", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := l.Addr().String()
		l.Close()
		log := &lockedBuffer{}
		c, err := r.builder(t.TempDir(), log, withCache("oci://"+closed+"/x")).Build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c[0].Cached || c[1].Cached || !strings.Contains(log.String(), "pushing to the remote cache failed") {
			t.Errorf("results %+v\n%s", c, log)
		}
	})
	t.Run("bad cache url", func(t *testing.T) {
		_, err := New(Options{RepoRoot: r.root, StoreDir: t.TempDir(), CacheURL: "s3://bucket"})
		if err == nil || !strings.Contains(err.Error(), "s3://bucket") {
			t.Fatalf("got %v", err)
		}
	})
}
