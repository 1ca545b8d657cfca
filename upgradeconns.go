package reconnectingpty

import (
	"context"
	"net"
	"os"
	"syscall"
)

// This file carries, across an upgrade's exec, the connections that Serve
// had accepted but whose clients had sent nothing yet (a brand-new client
// connecting just as the upgrade began): rather than reset them, as the
// live ones are, the old image hands their sockets to the new one, which
// serves them from their first byte. Their clients see nothing. A
// connection that had sent part of its init cannot be carried (those
// bytes are gone), nor one from ServeConn (its caller owns it).

// preInitReader counts what the init's read takes from a connection.
type preInitReader struct{ c *conn }

func (r preInitReader) Read(p []byte) (int, error) {
	n, err := r.c.Conn.Read(p)
	r.c.preInit.Add(int64(n))
	return n, err
}

// carryable is a connection an upgrade may carry: accepted by Serve, not
// attached, nothing read from it, and a socket. s.mu and c.mu are held.
func carryable(c *conn) (syscall.Conn, bool) {
	if !c.fromServe || c.attached || c.ended != nil || c.preInit.Load() != 0 {
		return nil, false
	}
	switch nc := c.Conn.(type) {
	case *net.TCPConn:
		return nc, true
	case *net.UnixConn:
		return nc, true
	}
	return nil, false
}

// takeForCarry makes a copy of c's socket for the new image and marks c
// carried, so that its handler closes its own descriptor without a reset
// or a log line. s.mu is held.
func takeForCarry(c *conn) (*os.File, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc, ok := carryable(c)
	if !ok {
		return nil, false
	}
	f, err := sc.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		return nil, false
	}
	c.carried = true
	return f, true
}

// keepCarried checks, once c's handler has returned, that it read nothing
// meanwhile; otherwise the copy is closed with a reset, as the live
// connections are, and false returned.
func keepCarried(c *conn, f *os.File) bool {
	if c.preInit.Load() == 0 {
		return true
	}
	resetFile(f)
	return false
}

// resetFile closes a carried socket's copy with a reset: its client
// reconnects rather than taking it for the end of its session.
func resetFile(f *os.File) {
	if nc, err := net.FileConn(f); err == nil {
		if l, ok := nc.(interface{ SetLinger(int) error }); ok {
			_ = l.SetLinger(0)
		}
		_ = nc.Close()
	}
	_ = f.Close()
}

// serveCarried serves, in the new image, the connections the old one
// carried, as if Serve had just accepted them.
func (s *Server) serveCarried(ctx context.Context, conns []net.Conn) {
	for i, nc := range conns {
		if !s.goServe(ctx, nc) {
			for _, rest := range conns[i+1:] {
				_ = rest.Close()
			}
			return
		}
	}
}
