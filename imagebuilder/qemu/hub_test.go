package qemu

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

func frame(b []byte) []byte {
	out := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(out, uint32(len(b)))
	copy(out[4:], b)
	return out
}

func readFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	return b
}

// TestHubRepeatsFramesToOthers connects three peers the way QEMU's socket
// netdev does and checks that a frame reaches the two others, not its sender.
func TestHubRepeatsFramesToOthers(t *testing.T) {
	h, err := NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var peers []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", h.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		peers = append(peers, c)
	}
	// Wait until the hub has all three.
	for deadline := time.Now().Add(5 * time.Second); ; {
		h.mu.Lock()
		n := len(h.conns)
		h.mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub has %d peers", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := peers[0].Write(frame([]byte("hello from 0"))); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers[1:] {
		if got := string(readFrame(t, p)); got != "hello from 0" {
			t.Errorf("got %q", got)
		}
	}
	if _, err := peers[2].Write(frame([]byte("from 2"))); err != nil {
		t.Fatal(err)
	}
	if got := string(readFrame(t, peers[0])); got != "from 2" {
		t.Errorf("peer 0 got %q, want only the frame from 2 (never its own)", got)
	}
	if got := string(readFrame(t, peers[1])); got != "from 2" {
		t.Errorf("peer 1 got %q", got)
	}
	// A peer sending a bad length is dropped.
	peers[1].Write([]byte{0xff, 0xff, 0xff, 0xff})
	peers[1].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peers[1].Read(make([]byte, 1)); err == nil {
		t.Errorf("hub kept a peer that sent a bad frame")
	}
}
