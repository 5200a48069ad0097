package boottest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ChannelName is the virtio-serial port the guest's cluster-testd serves.
const ChannelName = "org.imagebuilder.test"

// channel is the host end of a node's test channel: one JSON request per
// line, one JSON response per line, matched by id (see
// firstboot/agent/testd.go for the guest end).
type channel struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	next int64
}

type chanRequest struct {
	ID        int64  `json:"id"`
	Cmd       string `json:"cmd"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

type chanResponse struct {
	ID     int64  `json:"id"`
	Exit   int    `json:"exit"`
	Output []byte `json:"output"`
	Error  string `json:"error,omitempty"`
}

// CmdResult is what a command run in the guest returned.
type CmdResult struct {
	Exit   int    `json:"exit"`
	Output string `json:"output"`
	// Error is set when the command could not run or timed out.
	Error string `json:"error,omitempty"`
}

// dialChannel connects to QEMU's end of the port, waiting for QEMU to
// create the socket.
func dialChannel(ctx context.Context, socket string) (*channel, error) {
	for {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", socket)
		if err == nil {
			// A newline first ends any partial line left in the port.
			if _, err := conn.Write([]byte("\n")); err != nil {
				conn.Close()
				return nil, err
			}
			return &channel{conn: conn, r: bufio.NewReaderSize(conn, 1<<20)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to the test channel %s: %w", socket, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *channel) close() { c.conn.Close() }

// ready pings until the guest's responder answers or ctx ends.
func (c *channel) ready(ctx context.Context) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.run(pctx, "", 0)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no answer on the test channel by the end of the boot timeout (if the boot finished: is cluster-testd.path in the image? it comes with the firstboot package): %w", ctx.Err())
		}
		if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			return err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// run sends cmd and waits for its response (other ids are skipped: late
// answers to earlier pings).
func (c *channel) run(ctx context.Context, cmd string, timeout time.Duration) (CmdResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	id := c.next
	req, _ := json.Marshal(chanRequest{ID: id, Cmd: cmd, TimeoutMS: timeout.Milliseconds()})
	deadline := time.Now().Add(timeout + 30*time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.conn.Write(append(req, '\n')); err != nil {
		return CmdResult{}, c.ctxErr(ctx, err)
	}
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			return CmdResult{}, c.ctxErr(ctx, err)
		}
		var resp chanResponse
		if json.Unmarshal(line, &resp) != nil || resp.ID != id {
			continue
		}
		return CmdResult{Exit: resp.Exit, Output: string(resp.Output), Error: resp.Error}, nil
	}
}

func (c *channel) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
