package boottest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imagebuilder/firstboot/agent"
)

// TestChannelAgainstTheGuestResponder runs the host end of the test channel
// against the guest's responder (firstboot's testd) over a Unix socket, as
// QEMU would connect them.
func TestChannelAgainstTheGuestResponder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "ch.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// QEMU joins the socket to the guest port the responder serves.
		agent.ServeTest(ctx, c, slog.New(slog.DiscardHandler))
	}()
	ch, err := dialChannel(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.close()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if err := ch.ready(rctx); err != nil {
		t.Fatal(err)
	}
	res, err := ch.run(ctx, "echo hello; echo oops >&2; exit 3", 10*time.Second)
	if err != nil || res.Exit != 3 || res.Output != "hello\noops\n" {
		t.Errorf("run: %+v %v", res, err)
	}
	res, err = ch.run(ctx, "sleep 20", 200*time.Millisecond)
	if err != nil || res.Exit != -1 || !strings.Contains(res.Error, "timed out") {
		t.Errorf("timeout: %+v %v", res, err)
	}
	// A cancelled context ends a wait at once.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := ch.run(cctx, "true", time.Second); err == nil {
		t.Errorf("run with a cancelled context succeeded")
	}
}
