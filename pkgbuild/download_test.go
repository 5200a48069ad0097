package pkgbuild

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestDownloadResumes: a transfer cut off half way is resumed with a Range
// request, and the finished file verifies; a server without ranges gets a
// fresh download; a file that does not verify leaves nothing behind.
func TestDownloadResumes(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	var mu sync.Mutex
	var ranges []string
	cut, noRanges := true, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		rg, first := req.Header.Get("Range"), cut
		cut = false
		ranges = append(ranges, rg)
		mu.Unlock()
		if first {
			// Promise everything, send half, hang up.
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			panic(http.ErrAbortHandler)
		}
		if rg != "" && !noRanges {
			var from int
			fmt.Sscanf(rg, "bytes=%d-", &from)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[from:])
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	c := &sourceCache{dir: t.TempDir(), client: srv.Client(), log: discardLogger()}
	want := hexSHA(data)
	ctx := context.Background()
	if _, err := c.fetch(ctx, srv.URL+"/big", want); err == nil || !strings.Contains(err.Error(), "resumable") {
		t.Fatalf("cut-off transfer: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(c.dir, "partial", want)); err != nil || fi.Size() == 0 || fi.Size() >= int64(len(data)) {
		t.Fatalf("partial file: %v %v", fi, err)
	}
	got, err := c.fetch(ctx, srv.URL+"/big", want)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Fatal("resumed file differs")
	}
	if len(ranges) != 2 || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Errorf("requests' Range headers: %q", ranges)
	}

	t.Run("server without ranges", func(t *testing.T) {
		c := &sourceCache{dir: t.TempDir(), client: srv.Client(), log: discardLogger()}
		mu.Lock()
		cut, noRanges, ranges = true, true, nil
		mu.Unlock()
		c.fetch(ctx, srv.URL+"/big", want)
		got, err := c.fetch(ctx, srv.URL+"/big", want)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
			t.Fatal("file differs after a restart")
		}
	})
	t.Run("mismatch leaves nothing", func(t *testing.T) {
		c := &sourceCache{dir: t.TempDir(), client: srv.Client(), log: discardLogger()}
		mu.Lock()
		cut, noRanges = false, false
		mu.Unlock()
		if _, err := c.fetch(ctx, srv.URL+"/big", okSHA); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
			t.Fatalf("got %v", err)
		}
		for _, d := range []string{"partial", "sha256"} {
			if ents, _ := os.ReadDir(filepath.Join(c.dir, d)); len(ents) != 0 {
				t.Errorf("%s/ holds %v", d, ents)
			}
		}
	})
}
