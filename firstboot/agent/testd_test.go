package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// pipeRW joins a reader and a writer into the port the responder serves.
type pipeRW struct {
	io.Reader
	io.Writer
}

func TestServeTestRunsCommands(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ServeTest(ctx, pipeRW{inR, outW}, slog.New(slog.DiscardHandler)) }()
	replies := bufio.NewReader(outR)
	ask := func(line string) TestResponse {
		t.Helper()
		if _, err := io.WriteString(inW, line+"\n"); err != nil {
			t.Fatal(err)
		}
		l, err := replies.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var r TestResponse
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("reply %q: %v", l, err)
		}
		return r
	}
	if r := ask(`{"id":1}`); r.ID != 1 || r.Exit != 0 || string(r.Output) != "ready\n" {
		t.Errorf("ping: %+v", r)
	}
	if r := ask(`{"id":2,"cmd":"echo out; echo err >&2; exit 3"}`); r.ID != 2 || r.Exit != 3 || string(r.Output) != "out\nerr\n" {
		t.Errorf("command: %+v (output %q)", r, r.Output)
	}
	if r := ask(`garbage left over`); r.ID != 0 || r.Exit != -1 || !strings.Contains(r.Error, "not a request") {
		t.Errorf("garbage: %+v", r)
	}
	start := time.Now()
	if r := ask(`{"id":3,"cmd":"sleep 30","timeout_ms":300}`); r.ID != 3 || r.Exit != -1 || !strings.Contains(r.Error, "timed out") {
		t.Errorf("timeout: %+v", r)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("a 300ms timeout took %s", time.Since(start))
	}
	cancel()
	inW.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeTest: %v", err)
	}
}
