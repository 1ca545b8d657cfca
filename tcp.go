package reconnectingpty

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// tuneTCP makes the kernel notice a dead peer of a TCP connection within
// about timeout (docs/network.md): keepalive probes after a third of it of
// silence, and TCP_USER_TIMEOUT, which ends a connection whose sent data
// (or keepalive probes) stayed unacknowledged that long. Without it an
// idle connection to a vanished client is kept for hours (keepalive's
// default), and one with output in flight for about 15 minutes (the
// retransmission limit), counting against the limits all the while.
func tuneTCP(nc net.Conn, timeout time.Duration) {
	tc, ok := nc.(*net.TCPConn)
	if !ok || timeout <= 0 {
		return
	}
	idle := max(timeout/3, time.Second)
	count := 3
	interval := max((timeout-idle)/time.Duration(count), time.Second)
	_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: idle, Interval: interval, Count: count})
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(timeout.Milliseconds()))
	})
}
