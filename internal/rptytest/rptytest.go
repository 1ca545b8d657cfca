// Package rptytest holds helpers shared by the tests of the client package
// and of the rpty command: an in-process server on a loopback port and a
// listener that lets a test cut the connections it accepted.
package rptytest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty"
)

// TrackingListener wraps a net.Listener and records every connection it
// accepts, so a test can count them and cut them.
type TrackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// Accept accepts a connection from the wrapped listener and records it.
func (l *TrackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// Accepted is how many connections were accepted so far.
func (l *TrackingListener) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Drop resets every accepted connection. A reset, not a plain close: a
// plain close sends FIN, which the protocol uses to say the session ended,
// while a broken network shows as a reset or a timeout.
func (l *TrackingListener) Drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		ResetConn(c)
	}
}

// ResetConn closes c so that the peer sees a reset rather than a clean
// end of stream: for a TCP connection it sets SO_LINGER to zero before
// closing. Other connections are just closed.
func ResetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// StartServer runs a reconnectingpty.Server with cfg on a loopback port
// (127.0.0.1:0) until the test ends, and returns its listener, whose Addr
// is where to dial. A cleanup registered on t cancels Serve, waits for it
// to return and reports its error, if any, with t.Errorf.
func StartServer(t testing.TB, cfg reconnectingpty.Config) *TrackingListener {
	t.Helper()
	srv, err := reconnectingpty.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &TrackingListener{Listener: nl}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln
}

// RequireProcessGone fails the test if process pid (0: none) still runs,
// zombies aside, after a grace period, and kills it.
func RequireProcessGone(t testing.TB, pid int) {
	t.Helper()
	if pid <= 0 {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// The state follows the command's closing parenthesis.
		if err != nil || strings.HasPrefix(string(stat[strings.LastIndexByte(string(stat), ')')+1:]), " Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("session process %d outlived the daemon", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
