package reconnectingpty

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn is a served connection and the first reason it was ended for.
type conn struct {
	net.Conn

	// opts are the options the caller served it with; see ServeConnWith.
	opts ConnOptions

	mu       sync.Mutex
	ended    *disconnect
	attached bool
	initDone bool // counted out of the server's startups; guarded by the server's mu
	writeErr error
	// interrupted is set once interrupt was called: no deadline may be
	// set after that, or it would undo the interrupt.
	interrupted bool
	// onInterrupt are called by interrupt, e.g. to stop a write to the
	// terminal that waits for a program that does not read.
	onInterrupt []func()
	// sessionEnded is set when the output ended because the session did.
	sessionEnded bool

	// fromServe is set for a connection Serve accepted (not ServeConn's),
	// which an upgrade may carry to the new image while it has sent
	// nothing (see upgradeconns.go); preInit counts the bytes read
	// before the init was, and carried is set once an upgrade took it.
	fromServe bool
	preInit   atomic.Int64
	carried   bool
}

// failWrite records that writing output failed. The close is not
// attributed yet: a client that hung up shows as EOF on the read side
// within the grace period, a broken network as an error or a timeout.
func (c *conn) failWrite(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeErr == nil {
		c.writeErr = err
	}
	if c.ended == nil && !c.interrupted {
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	}
}

// setReadDeadline sets the read deadline unless the connection has been
// interrupted.
func (c *conn) setReadDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.interrupted {
		_ = c.SetReadDeadline(t)
	}
}

// keepReading extends the read deadline to t, unless the connection was
// interrupted or its output failed (whose short deadline must hold).
func (c *conn) keepReading(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.interrupted && c.writeErr == nil {
		_ = c.SetReadDeadline(t)
	}
}

// interruptedOrFailed reports whether a read deadline other than
// keepReading's may have ended a read.
func (c *conn) interruptedOrFailed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interrupted || c.writeErr != nil
}

// whenInterrupted calls f when the connection is interrupted, or now if
// it has been.
func (c *conn) whenInterrupted(f func()) {
	c.mu.Lock()
	if !c.interrupted {
		c.onInterrupt = append(c.onInterrupt, f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	f()
}

// interrupt makes every pending and future read and write on the
// connection fail at once. Unlike Close it never blocks (closing a
// WebSocket waits for a handshake), so it is safe under locks; the
// connection's handler closes it.
func (c *conn) interrupt() {
	c.mu.Lock()
	c.interrupted = true
	hooks := c.onInterrupt
	c.onInterrupt = nil
	_ = c.SetDeadline(time.Unix(1, 0))
	c.mu.Unlock()
	for _, f := range hooks {
		f()
	}
}

// end records d as the reason the connection closes, unless one is
// recorded already; it reports whether d was recorded.
func (c *conn) end(d disconnect) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended != nil {
		return false
	}
	c.ended = &d
	return true
}

func (c *conn) reason() (disconnect, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == nil {
		return disconnect{}, false
	}
	return *c.ended, true
}

// closeWrite ends the output stream so the client reads EOF after every
// byte sent, without discarding its unread input (a close with unread
// input resets a TCP connection, which can lose the tail of output).
func (c *conn) closeWrite() {
	c.mu.Lock()
	c.sessionEnded = true
	c.mu.Unlock()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			// Give the client a moment to hang up on its own.
			c.setReadDeadline(time.Now().Add(time.Second))
			return
		}
	}
	_ = c.Close()
}

// afterFunc runs f when ctx is done, like context.AfterFunc; the stop
// function it returns also waits for a run of f that has begun.
func afterFunc(ctx context.Context, f func()) (stop func()) {
	ran := make(chan struct{})
	stopped := context.AfterFunc(ctx, func() {
		defer close(ran)
		f()
	})
	return func() {
		if !stopped() {
			<-ran
		}
	}
}

func remoteAddr(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}
