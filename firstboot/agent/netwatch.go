package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// NetWatch reports changes of the host's addresses, routes and links, so a
// retry can run as soon as the network changed instead of at the next tick
// of a backoff timer.
type NetWatch interface {
	// Changed is signalled (without blocking, coalesced) after each burst
	// of changes.
	Changed() <-chan struct{}
	Close() error
}

// netlinkGroups are the rtnetlink multicast groups that can change what an
// ip-detect script prints: links, IPv4/IPv6 addresses and routes.
const netlinkGroups = 1<<(syscall.RTNLGRP_LINK-1) | 1<<(syscall.RTNLGRP_IPV4_IFADDR-1) |
	1<<(syscall.RTNLGRP_IPV4_ROUTE-1) | 1<<(syscall.RTNLGRP_IPV6_IFADDR-1) | 1<<(syscall.RTNLGRP_IPV6_ROUTE-1)

// netlinkWatch is a NetWatch over an rtnetlink socket, read through Go's
// poller so Close ends the reader.
type netlinkWatch struct {
	f       *os.File
	changed chan struct{}
}

// WatchNetlink subscribes to the kernel's link, address and route
// notifications. Nothing is parsed: any message means "something changed".
func WatchNetlink() (NetWatch, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: netlinkGroups}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	w := &netlinkWatch{f: os.NewFile(uintptr(fd), "rtnetlink"), changed: make(chan struct{}, 1)}
	go w.read()
	return w, nil
}

func (w *netlinkWatch) read() {
	// ENOBUFS (the kernel dropped messages) also means "changed".
	signalReads(w.f, w.changed, 64<<10, func(err error) bool { return errors.Is(err, syscall.ENOBUFS) })
}

// signalReads reads f until it fails (Close ends it) and signals changed,
// without blocking, after every read; an error for which also returns true
// counts as a read. Any content means "something changed".
func signalReads(f *os.File, changed chan<- struct{}, bufSize int, also func(error) bool) {
	buf := make([]byte, bufSize)
	for {
		_, err := f.Read(buf)
		if err != nil && (also == nil || !also(err)) {
			return
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}
}

func (w *netlinkWatch) Changed() <-chan struct{} { return w.changed }

func (w *netlinkWatch) Close() error { return w.f.Close() }

// netSettle is how long a retry woken by a network change waits for the
// rest of the burst (an address usually comes with its routes).
const netSettle = 50 * time.Millisecond

// waitRetry waits for d, or until nw reports a change (then netSettle more),
// or ctx ends. It says whether a network change woke it.
func waitRetry(ctx context.Context, nw NetWatch, d time.Duration) (woken bool, err error) {
	var changed <-chan struct{}
	if nw != nil {
		changed = nw.Changed()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return false, nil
	case <-changed:
		if err := sleep(ctx, netSettle); err != nil {
			return true, err
		}
		// Drop the signals of the same burst.
		select {
		case <-changed:
		default:
		}
		return true, nil
	}
}
