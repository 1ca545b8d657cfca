//go:build linux

package client

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// rtnetlinkGroups are the kernel's routing messages that may mean the path
// to the server is back: a link that came up, an address added, a route
// changed.
const rtnetlinkGroups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
	unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE

// watchNetwork subscribes to rtnetlink and signals changed (at most one
// signal pending) on every message, until stop, which closes the socket
// and waits for the reading goroutine.
func watchNetwork() (changed <-chan struct{}, stop func(), err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, xerrors.Errorf("open rtnetlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: rtnetlinkGroups}); err != nil {
		_ = unix.Close(fd)
		return nil, nil, xerrors.Errorf("subscribe to rtnetlink: %w", err)
	}
	// A non-blocking descriptor joins the runtime's poller, so Close wakes
	// the read below.
	f := os.NewFile(uintptr(fd), "rtnetlink")
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			_, err := f.Read(buf)
			// ENOBUFS: the socket overflowed and messages were lost,
			// which is a change too.
			if err != nil && !errors.Is(err, unix.ENOBUFS) {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, func() {
		_ = f.Close()
		<-done
	}, nil
}
