package qemu

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCleanLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mMulti-User System\x1b[0m.\r", "[  OK  ] Reached target Multi-User System."},
		{"\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: loading", "BdsDxe: loading"},
		{"plain", "plain"},
	} {
		if got := CleanLine([]byte(tc.in)); got != tc.want {
			t.Errorf("CleanLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// fakeVM is a VM whose console is a file the test writes.
func fakeVM(t *testing.T) (*VM, *os.File) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "console.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &VM{console: p, done: make(chan struct{}), stderr: &lockedBuffer{}}, f
}

func TestExpect(t *testing.T) {
	ctx := context.Background()
	v, f := fakeVM(t)
	go func() {
		for _, s := range []string{"firmware\r\n", "[  OK  ] Reached target ", "\x1b[1mBasic System\x1b[0m.\r\n", "noise\n", "debian login: "} {
			time.Sleep(30 * time.Millisecond)
			f.WriteString(s)
		}
	}()
	line, err := v.Expect(ctx, regexp.MustCompile(`Reached target .*Basic System`), 5*time.Second)
	if err != nil || line != "[  OK  ] Reached target Basic System." {
		t.Fatalf("Expect = %q, %v", line, err)
	}
	// The prompt has no newline yet still matches.
	line, err = v.Expect(ctx, regexp.MustCompile(`login: $`), 5*time.Second)
	if err != nil || line != "debian login: " {
		t.Fatalf("Expect prompt = %q, %v", line, err)
	}
	// Expect continues after the last match: "firmware" is behind us.
	if _, err := v.Expect(ctx, regexp.MustCompile(`^firmware$`), 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("matched a line before the cursor: %v", err)
	}
	// ExpectFrom 0 finds it again.
	if line, _, err := v.ExpectFrom(ctx, 0, regexp.MustCompile(`^firmware$`), time.Second); err != nil || line != "firmware" {
		t.Fatalf("ExpectFrom(0) = %q, %v", line, err)
	}
}

func TestExpectTimeoutAndExit(t *testing.T) {
	ctx := context.Background()
	v, f := fakeVM(t)
	f.WriteString("Kernel panic - not syncing\n")
	_, err := v.Expect(ctx, regexp.MustCompile("login:"), 150*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("timeout error = %v, want DeadlineExceeded with the console tail", err)
	}
	close(v.done)
	start := time.Now()
	_, err = v.Expect(ctx, regexp.MustCompile("login:"), 0)
	if !errors.Is(err, errExited) || time.Since(start) > time.Second {
		t.Fatalf("exit error = %v after %v", err, time.Since(start))
	}
}

func TestConsoleReader(t *testing.T) {
	v, f := fakeVM(t)
	f.WriteString("one\n")
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.WriteString("two\n")
		time.Sleep(100 * time.Millisecond)
		close(v.done)
	}()
	r := v.Console(0)
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "one\ntwo\n" {
		t.Fatalf("Console = %q, %v", b, err)
	}
}
