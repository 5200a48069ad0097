package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// maxCapture bounds how much of a script's output is kept.
const maxCapture = 64 << 10

// maxQuote bounds how much of a script's output a message quotes.
const maxQuote = 200

// scriptResult is the outcome of one run of a script.
type scriptResult struct {
	stdout, stderr capBuffer
	// err is nil when the script exited 0.
	err error
	// timedOut: the script's own timeout passed and it was killed.
	timedOut bool
	timeout  time.Duration
	// killed is why the caller's context ended while the script ran.
	killed error
}

func (r *scriptResult) ok() bool { return r.err == nil }

// status says how the script ended, for messages.
func (r *scriptResult) status() string {
	var exit *exec.ExitError
	switch {
	case r.err == nil:
		return "exit status 0"
	case r.timedOut:
		return fmt.Sprintf("timed out after %s and was killed", r.timeout)
	case errors.Is(r.killed, context.DeadlineExceeded):
		return "was killed when the deadline passed"
	case r.killed != nil:
		return fmt.Sprintf("was killed: %v", r.killed)
	case errors.As(r.err, &exit):
		return exit.ProcessState.String()
	default:
		return fmt.Sprintf("could not run: %v", r.err)
	}
}

// runScript runs path with args and env, killing its whole process group
// when ctx ends or timeout (if positive) passes.
func runScript(ctx context.Context, path string, args, env []string, timeout time.Duration) *scriptResult {
	res := &scriptResult{timeout: timeout}
	runCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(runCtx, path, args...)
	cmd.Env = env
	cmd.Stdout = &res.stdout
	cmd.Stderr = &res.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A grandchild that escaped the process group could hold the pipes
	// open; stop waiting for it shortly after the kill.
	cmd.WaitDelay = 2 * time.Second
	res.err = cmd.Run()
	if res.err != nil {
		switch {
		case ctx.Err() != nil:
			res.killed = ctx.Err()
		case runCtx.Err() != nil:
			res.timedOut = true
		}
	}
	return res
}

// capBuffer keeps the first maxCapture bytes written to it and counts all.
type capBuffer struct {
	buf   bytes.Buffer
	total int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.total += len(p)
	if room := maxCapture - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// quoted returns the output as a Go-quoted string, truncated to maxQuote
// bytes with a note of the full size, for error messages.
func (c *capBuffer) quoted() string {
	b := c.buf.Bytes()
	if c.total <= maxQuote {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:maxQuote])) + fmt.Sprintf("... (%d bytes in all)", c.total)
}

// short returns the output truncated like quoted but unquoted, for log
// attributes (the log handler quotes).
func (c *capBuffer) short() string {
	b := c.buf.Bytes()
	if c.total <= maxQuote {
		return string(b)
	}
	return string(b[:maxQuote]) + fmt.Sprintf("... (%d bytes in all)", c.total)
}
