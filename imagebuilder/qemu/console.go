package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"
)

// pollInterval is how often the console log is re-read.
const pollInterval = 50 * time.Millisecond

// ansiRe matches terminal escape sequences (colours, cursor moves) that
// systemd and firmware write to the console.
var ansiRe = regexp.MustCompile(`\x1b(\[[0-9;?=]*[A-Za-z]|[()][0-9A-Za-z]|[=>])`)

// CleanLine removes escape sequences, carriage returns and NULs from a
// console line.
func CleanLine(b []byte) string {
	b = ansiRe.ReplaceAll(b, nil)
	b = bytes.ReplaceAll(b, []byte("\r"), nil)
	b = bytes.ReplaceAll(b, []byte("\x00"), nil)
	return string(b)
}

// Expect waits until a console line matches re and returns the line
// (cleaned). It scans from where the previous Expect stopped, so a series
// of Expects follows the boot in order. The last, unfinished line counts
// too (a login prompt has no newline). timeout 0 waits as long as ctx.
func (v *VM) Expect(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	v.mu.Lock()
	from := v.cursor
	v.mu.Unlock()
	line, next, err := v.ExpectFrom(ctx, from, re, timeout)
	if err == nil {
		v.mu.Lock()
		v.cursor = next
		v.mu.Unlock()
	}
	return line, err
}

// ExpectFrom is Expect from byte offset from of the console log; next is
// the offset just after the matched line.
func (v *VM) ExpectFrom(ctx context.Context, from int64, re *regexp.Regexp, timeout time.Duration) (line string, next int64, err error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	f, err := os.Open(v.console)
	if err != nil {
		return "", from, fmt.Errorf("console log: %w", err)
	}
	defer f.Close()
	pos := from // start of the unscanned, possibly partial line
	var pending []byte
	buf := make([]byte, 64<<10)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		exited := false
		select {
		case <-v.done:
			exited = true
		default:
		}
		for {
			n, rerr := f.ReadAt(buf, pos+int64(len(pending)))
			pending = append(pending, buf[:n]...)
			if n == 0 || errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				return "", from, fmt.Errorf("console log: %w", rerr)
			}
		}
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			l := CleanLine(pending[:i])
			pos += int64(i + 1)
			pending = pending[i+1:]
			if re.MatchString(l) {
				return l, pos, nil
			}
		}
		if len(pending) > 0 {
			if l := CleanLine(pending); re.MatchString(l) {
				return l, pos + int64(len(pending)), nil
			}
		}
		if exited {
			return "", from, fmt.Errorf("%w before %q appeared on the console: %v; console tail:\n%s", errExited, re, v.Wait(), v.consoleTail(2000))
		}
		select {
		case <-ctx.Done():
			return "", from, fmt.Errorf("waiting for %q on the console: %w; console tail:\n%s", re, ctx.Err(), v.consoleTail(2000))
		case <-tick.C:
		case <-v.done:
		}
	}
}

// Console returns a reader that follows the console log from byte offset
// from until the VM exits (then EOF) or the reader is closed.
func (v *VM) Console(from int64) io.ReadCloser {
	return &tailReader{v: v, pos: from, closed: make(chan struct{})}
}

type tailReader struct {
	v      *VM
	f      *os.File
	pos    int64
	closed chan struct{}
}

func (t *tailReader) Read(p []byte) (int, error) {
	if t.f == nil {
		f, err := os.Open(t.v.console)
		if err != nil {
			return 0, err
		}
		t.f = f
	}
	for {
		exited := false
		select {
		case <-t.v.done:
			exited = true
		default:
		}
		n, err := t.f.ReadAt(p, t.pos)
		t.pos += int64(n)
		if n > 0 {
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if exited {
			return 0, io.EOF
		}
		select {
		case <-t.closed:
			return 0, io.EOF
		case <-time.After(pollInterval):
		case <-t.v.done:
		}
	}
}

func (t *tailReader) Close() error {
	select {
	case <-t.closed:
	default:
		close(t.closed)
	}
	if t.f != nil {
		return t.f.Close()
	}
	return nil
}

// consoleTail is the end of the console log, cleaned, for error messages.
func (v *VM) consoleTail(n int64) string {
	f, err := os.Open(v.console)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	start := max(0, fi.Size()-n)
	b := make([]byte, fi.Size()-start)
	m, _ := f.ReadAt(b, start)
	return CleanLine(b[:m])
}
