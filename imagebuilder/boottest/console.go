package boottest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"imagebuilder/imagebuilder/qemu"
)

// consoleLine is one line of a node's serial console with the time it
// arrived, from the start of QEMU.
type consoleLine struct {
	at   time.Duration
	text string
}

// console follows a VM's serial console and stamps every line.
type console struct {
	start time.Time

	mu      sync.Mutex
	lines   []consoleLine
	changed chan struct{} // closed and replaced on every new line
	ended   bool
}

// errConsoleEnded means the VM exited before the awaited line.
var errConsoleEnded = errors.New("the VM exited")

func watchConsole(vm *qemu.VM, start time.Time) *console {
	c := &console{start: start, changed: make(chan struct{})}
	r := vm.Console(0)
	go func() {
		defer r.Close()
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			l, err := br.ReadString('\n')
			if l != "" && (err == nil || errors.Is(err, io.EOF)) {
				c.add(qemu.CleanLine([]byte(strings.TrimRight(l, "\n"))))
			}
			if err != nil {
				c.mu.Lock()
				c.ended = true
				close(c.changed)
				c.changed = make(chan struct{})
				c.mu.Unlock()
				return
			}
		}
	}()
	return c
}

func (c *console) add(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, consoleLine{at: time.Since(c.start), text: text})
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait returns the first line at or after index from that matches any of
// res, with its index and which expression matched.
func (c *console) wait(ctx context.Context, from int, res ...*regexp.Regexp) (idx, which int, line consoleLine, err error) {
	for {
		c.mu.Lock()
		for i := from; i < len(c.lines); i++ {
			for w, re := range res {
				if re.MatchString(c.lines[i].text) {
					l := c.lines[i]
					c.mu.Unlock()
					return i, w, l, nil
				}
			}
		}
		from = len(c.lines)
		ended, changed := c.ended, c.changed
		c.mu.Unlock()
		if ended {
			return -1, -1, consoleLine{}, errConsoleEnded
		}
		select {
		case <-ctx.Done():
			return -1, -1, consoleLine{}, ctx.Err()
		case <-changed:
		}
	}
}

// find is wait without waiting.
func (c *console) find(re *regexp.Regexp) (consoleLine, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if re.MatchString(l.text) {
			return l, true
		}
	}
	return consoleLine{}, false
}

// tail is the last n non-empty lines, for failure reports.
func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i := len(c.lines) - 1; i >= 0 && len(out) < n; i-- {
		if t := strings.TrimSpace(c.lines[i].text); t != "" {
			out = append(out, c.lines[i].text)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return strings.Join(out, "\n")
}
