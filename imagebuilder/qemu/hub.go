package qemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// Hub is an Ethernet hub on loopback that joins any number of VMs on one
// segment: each VM's NIC is a QEMU socket netdev that connects to the hub
// (NIC.SocketConnect = hub.Addr()), and every frame one VM sends reaches all
// the others. QEMU's own "-netdev socket,listen=" takes a single peer and
// multicast sockets depend on the host's routes; a hub in the test process
// works for any number of VMs, for VMs that start late and for a VM that is
// restarted (it simply connects again). Frames never leave the machine.
type Hub struct {
	ln  net.Listener
	log *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]*sync.Mutex
	wg    sync.WaitGroup
}

// maxFrame bounds one Ethernet frame on the socket (QEMU's limit is 69632).
const maxFrame = 70000

// NewHub listens on a free loopback port.
func NewHub(log *slog.Logger) (*Hub, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("network hub: %w", err)
	}
	h := &Hub{ln: ln, log: log, conns: map[net.Conn]*sync.Mutex{}}
	h.wg.Add(1)
	go h.accept()
	return h, nil
}

// Addr is the loopback host:port VMs connect to.
func (h *Hub) Addr() string { return h.ln.Addr().String() }

// NIC returns a NIC on the hub's segment with the given MAC address.
func (h *Hub) NIC(mac string) NIC { return NIC{SocketConnect: h.Addr(), MAC: mac} }

// Close stops the hub and drops every connection.
func (h *Hub) Close() error {
	err := h.ln.Close()
	h.mu.Lock()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
	return err
}

func (h *Hub) accept() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns[c] = &sync.Mutex{}
		h.mu.Unlock()
		h.wg.Add(1)
		go h.serve(c)
	}
}

// serve reads frames from c (QEMU's stream format: a 4-byte big-endian
// length, then the frame) and repeats them to every other connection.
func (h *Hub) serve(c net.Conn) {
	defer h.wg.Done()
	defer func() {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		c.Close()
	}()
	var hdr [4]byte
	buf := make([]byte, maxFrame+4)
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > maxFrame {
			h.log.Warn("network hub: dropping a peer that sent a bad frame length", "len", n)
			return
		}
		copy(buf, hdr[:])
		if _, err := io.ReadFull(c, buf[4:4+n]); err != nil {
			return
		}
		h.mu.Lock()
		peers := make(map[net.Conn]*sync.Mutex, len(h.conns))
		for o, mu := range h.conns {
			if o != c {
				peers[o] = mu
			}
		}
		h.mu.Unlock()
		for o, mu := range peers {
			mu.Lock()
			_, err := o.Write(buf[:4+n])
			mu.Unlock()
			if err != nil && !errors.Is(err, net.ErrClosed) {
				h.log.Debug("network hub: write to peer failed", "err", err)
			}
		}
	}
}
