package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// TestChannel is the virtio-serial port a test harness (imagebuilder test)
// gives a VM to run commands in the guest without SSH. cluster-testd.path
// starts "cluster-firstboot testd" only when the port exists, so a host
// that is not under test never runs the responder.
const TestChannel = "/dev/virtio-ports/org.imagebuilder.test"

// TestRequest is one line the harness sends: a shell command to run.
// An empty Cmd is a ping.
type TestRequest struct {
	ID        int64  `json:"id"`
	Cmd       string `json:"cmd"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

// TestResponse is the line the responder sends back for a request.
type TestResponse struct {
	ID     int64  `json:"id"`
	Exit   int    `json:"exit"`
	Output []byte `json:"output"`
	Error  string `json:"error,omitempty"`
}

// maxTestOutput bounds a request line (a command's output is bounded by
// capBuffer to 64 KiB).
const maxTestOutput = 1 << 20

// defaultTestTimeout bounds a command when the request names no timeout.
const defaultTestTimeout = 5 * time.Minute

// ServeTest answers requests read from rw until ctx ends. Reads that hit
// EOF (the harness is not connected yet) are retried after a short pause,
// so a port that exists before the harness connects is served all the
// same. Lines that are not requests (left over from an earlier connection)
// are answered with an error and id 0.
func ServeTest(ctx context.Context, rw io.ReadWriter, log *slog.Logger) error {
	var pending []byte
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		n, err := rw.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			line := bytes.TrimSpace(pending[:i])
			pending = pending[i+1:]
			if len(line) == 0 {
				continue
			}
			resp := handleTestLine(ctx, line, log)
			out, _ := json.Marshal(resp)
			if _, err := rw.Write(append(out, '\n')); err != nil {
				log.Warn("testd: writing response", "err", err)
			}
		}
		if len(pending) > maxTestOutput {
			pending = nil
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EPIPE):
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		default:
			return fmt.Errorf("reading test channel: %w", err)
		}
	}
	return nil
}

func handleTestLine(ctx context.Context, line []byte, log *slog.Logger) TestResponse {
	var req TestRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return TestResponse{Exit: -1, Error: fmt.Sprintf("not a request: %v", err)}
	}
	if req.Cmd == "" {
		return TestResponse{ID: req.ID, Output: []byte("ready\n")}
	}
	timeout := defaultTestTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	log.Info("testd: running", "id", req.ID, "cmd", req.Cmd)
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "/bin/sh", "-c", req.Cmd)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "TERM=dumb"}
	var out capBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	resp := TestResponse{ID: req.ID, Output: out.buf.Bytes()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case runCtx.Err() != nil:
		resp.Exit = -1
		resp.Error = fmt.Sprintf("timed out after %s and was killed", timeout)
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		resp.Exit = exit.ExitCode()
	default:
		resp.Exit = -1
		resp.Error = err.Error()
	}
	return resp
}

// TestD serves the test channel of this host (see TestChannel).
func (a *Agent) TestD(ctx context.Context, port string) error {
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening test channel: %w", err)
	}
	defer f.Close()
	a.Log.Info("testd: serving", "port", port)
	return ServeTest(ctx, f, a.Log)
}
