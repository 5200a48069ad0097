package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"
)

// DefaultTCGNudge is how often the runner taps Shift in a TCG guest.
const DefaultTCGNudge = 2 * time.Second

// kernelBanner starts nudging: Linux has taken over from the firmware and
// the boot loader, which must not see a key press (systemd-boot would show
// its menu and wait).
var kernelBanner = []byte("Linux version ")

// nudge works around lost vCPU wake-ups of multi-threaded TCG (QEMU 7.2,
// measured on this project's machines): now and then a halted vCPU misses
// its timer interrupt and the guest stalls until some other interrupt comes
// (systemd waits forever in synchronize_rcu; a key press ends it). Once the
// kernel banner is on the console, it taps Shift through QMP every period,
// which produces a keyboard interrupt and no input.
func (v *VM) nudge(ctx context.Context, socket string, period time.Duration) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for !v.consoleHas(kernelBanner) {
		select {
		case <-ctx.Done():
			return
		case <-v.done:
			return
		case <-tick.C:
		}
	}
	conn, err := net.Dial("unix", socket)
	if err != nil {
		v.cfg.Log.Debug("TCG nudge: no QMP socket", "err", err)
		return
	}
	defer conn.Close()
	go func() {
		select {
		case <-ctx.Done():
		case <-v.done:
		}
		conn.Close()
	}()
	r := bufio.NewReader(conn)
	if err := qmp(conn, r, "qmp_capabilities", nil); err != nil {
		v.cfg.Log.Debug("TCG nudge: QMP handshake", "err", err)
		return
	}
	v.cfg.Log.Debug("TCG nudge: kernel is up, tapping Shift", "every", period)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.done:
			return
		case <-t.C:
		}
		keys := map[string]any{"keys": []map[string]string{{"type": "qcode", "data": "shift"}}}
		if err := qmp(conn, r, "send-key", keys); err != nil {
			v.cfg.Log.Debug("TCG nudge stopped", "err", err)
			return
		}
	}
}

// qmp runs one QMP command and reads until its reply, skipping the
// greeting and asynchronous events.
func qmp(conn net.Conn, r *bufio.Reader, cmd string, args any) error {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return err
	}
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return err
		}
		var msg struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if json.Unmarshal(line, &msg) != nil {
			continue
		}
		if msg.Error != nil {
			return fmt.Errorf("qmp %s: %s", cmd, msg.Error.Desc)
		}
		if msg.Return != nil {
			return nil
		}
	}
}

// consoleHas reports whether the console log contains s.
func (v *VM) consoleHas(s []byte) bool {
	b, err := os.ReadFile(v.console)
	return err == nil && bytes.Contains(b, s)
}
