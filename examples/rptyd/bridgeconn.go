package main

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/xerrors"
)

// flowWindow is how much output the bridge sends a page that acknowledges
// what it has rendered (flow=1) before it waits for an acknowledgement:
// about the high mark of xterm.js's flow-control guide. The page's copy of
// this number is FLOW_WINDOW in web/app.js.
const flowWindow = 64 << 10

// webQueueSize is the output queue of a web terminal's connection
// (ConnOptions.QueueSize), a thirty-second of the server's default: a page
// that renders slower than the program writes (xterm.js shows a few MB/s
// of yes) is paced once 32 KiB wait for it instead of 1 MiB, so what the
// user types is echoed behind that much less. A snapshot on attach does
// not count against it.
const webQueueSize = 128 << 10

// maxControlMessage bounds a text message from the page: "ack" and a
// byte count.
const maxControlMessage = 32

// bridgeConn is the WebSocket as the server sees it: a net.Conn whose read
// side yields the init frame first, then the bytes of the page's binary
// messages.
//
// With flow control (flow=1), the page acknowledges the output it has
// rendered with text messages "ack N" (N bytes more rendered), and Write
// keeps at most flowWindow bytes unacknowledged: while the page catches
// up, the server's writer waits, the connection's queue fills, and the
// session's program is paced as for any slow client, instead of the page
// drowning in output it cannot show. Any other text message is refused
// (close 1003), as without flow control.
//
// Its CloseWrite is how the page learns that the session ended: the server
// half-closes a connection (after flushing the output) exactly when the
// session's process exited, it timed out, or the server shut down. Every
// other close (a slow page cut off, the page gone, a forced shutdown) is a
// plain Close, after which the page reconnects.
type bridgeConn struct {
	net.Conn // websocket.NetConn of ws, for writes

	ws   *websocket.Conn
	flow bool

	// in carries the page's binary messages from pump to Read; its far
	// end is pumpIn. Its deadlines are the connection's read deadlines.
	in, pumpIn net.Conn
	// readErr is why pump stopped, for Read to return after in's EOF.
	readErr atomic.Pointer[error]
	pumped  chan struct{}

	// init is what is left of the init frame. Only the server's single
	// reader touches it.
	init []byte
	// catchingUp records that the page closed with statusCatchingUp.
	catchingUp atomic.Bool

	window window

	closeOnce sync.Once
	closed    chan struct{} // closed once the WebSocket is
}

func newBridgeConn(ctx context.Context, ws *websocket.Conn, init []byte, flow bool) *bridgeConn {
	in, pumpIn := net.Pipe()
	c := &bridgeConn{
		Conn:   websocket.NetConn(ctx, ws, websocket.MessageBinary),
		ws:     ws,
		flow:   flow,
		in:     in,
		pumpIn: pumpIn,
		pumped: make(chan struct{}),
		init:   init,
		closed: make(chan struct{}),
		window: window{changed: make(chan struct{})},
	}
	go c.pump(ctx)
	return c
}

// pump reads the page's messages: binary ones are the protocol stream,
// text ones flow control.
func (c *bridgeConn) pump(ctx context.Context) {
	defer close(c.pumped)
	err := c.pumpMessages(ctx)
	c.readErr.Store(&err)
	_ = c.pumpIn.Close()
}

func (c *bridgeConn) pumpMessages(ctx context.Context) error {
	for {
		typ, r, err := c.ws.Reader(ctx)
		if err != nil {
			return err
		}
		if typ == websocket.MessageText {
			if err := c.control(r); err != nil {
				_ = c.ws.Close(websocket.StatusUnsupportedData, err.Error())
				return err
			}
			continue
		}
		if _, err := io.Copy(c.pumpIn, r); err != nil {
			return xerrors.Errorf("pass on the page's input: %w", err)
		}
	}
}

// control applies a text message from the page: an acknowledgement.
func (c *bridgeConn) control(r io.Reader) error {
	msg, err := io.ReadAll(io.LimitReader(r, maxControlMessage+1))
	if err != nil {
		return xerrors.Errorf("read text message: %w", err)
	}
	if !c.flow {
		return xerrors.New("text message without flow control: requests are binary messages")
	}
	if len(msg) > maxControlMessage {
		return xerrors.Errorf("text message of more than %d bytes: want \"ack N\"", maxControlMessage)
	}
	count, ok := strings.CutPrefix(string(msg), "ack ")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n <= 0 {
		return xerrors.Errorf("text message %q: want \"ack N\", N the bytes rendered since the last", msg)
	}
	return c.window.ack(n)
}

func (c *bridgeConn) Read(p []byte) (int, error) {
	if len(c.init) > 0 {
		n := copy(p, c.init)
		c.init = c.init[n:]
		return n, nil
	}
	n, err := c.in.Read(p)
	if err != io.EOF {
		return n, err
	}
	why := c.readErr.Load()
	if why == nil || *why == nil {
		return n, io.EOF
	}
	switch websocket.CloseStatus(*why) {
	case statusCatchingUp:
		// The page closed on purpose and comes back: as graceful a
		// close as a normal closure.
		c.catchingUp.Store(true)
		return n, io.EOF
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		return n, io.EOF
	}
	return n, *why
}

// Write sends p as binary messages; with flow control, no more at a time
// than the page's window has room for.
func (c *bridgeConn) Write(p []byte) (int, error) {
	if !c.flow {
		return c.Conn.Write(p)
	}
	written := 0
	for len(p) > 0 {
		room, err := c.window.wait(c.closed)
		if err != nil {
			return written, err
		}
		k := min(room, len(p))
		c.window.sent(k)
		n, err := c.Conn.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

func (c *bridgeConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *bridgeConn) SetReadDeadline(t time.Time) error { return c.in.SetReadDeadline(t) }

func (c *bridgeConn) SetWriteDeadline(t time.Time) error {
	c.window.setDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

// CloseWrite ends the output with the close code statusSessionEnded. The
// closing handshake waits (up to seconds) for the page's reply, so it runs
// in a goroutine that ServeHTTP waits for through wait; the server meanwhile
// reads on until the page's close arrives, or its own deadline.
func (c *bridgeConn) CloseWrite() error {
	c.closeOnce.Do(func() {
		go func() {
			defer close(c.closed)
			// The close frame follows every byte of output: the
			// server calls this after the last write.
			_ = c.ws.Close(statusSessionEnded, "session ended")
			// Stops NetConn's deadline timers and contexts; its own
			// close of the WebSocket is a no-op by now.
			_ = c.Conn.Close()
		}()
	})
	return nil
}

// Close ends the WebSocket at once, without a close frame, so the page
// reconnects. It never blocks, so a connection's handler closing a page
// that stopped reading is never held up by a handshake. After CloseWrite it
// does nothing; the handshake ends the connection soon.
func (c *bridgeConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.ws.CloseNow()
		_ = c.Conn.Close()
		close(c.closed)
	})
	return nil
}

// wait closes the connection if that has not begun and waits until the
// close is done and the page's messages are no longer read.
func (c *bridgeConn) wait() {
	_ = c.Close()
	<-c.closed
	// The WebSocket is closed, so pump's read ends; closing the pipe ends
	// a pass-on that the server no longer reads.
	_ = c.in.Close()
	<-c.pumped
}

// window counts the output sent and not yet acknowledged by the page.
type window struct {
	mu       sync.Mutex
	unacked  int
	deadline time.Time
	// changed is closed, and replaced, when room opens or the deadline
	// moves, to wake a waiting Write.
	changed chan struct{}
}

// wait returns the room in the window once there is some.
func (w *window) wait(closed <-chan struct{}) (int, error) {
	for {
		w.mu.Lock()
		room, deadline, changed := flowWindow-w.unacked, w.deadline, w.changed
		w.mu.Unlock()
		if room > 0 {
			return room, nil
		}
		if err := waitChange(changed, closed, deadline); err != nil {
			return 0, err
		}
	}
}

// waitChange waits until changed or closed is closed, or the deadline (if
// set) passes.
func waitChange(changed, closed <-chan struct{}, deadline time.Time) error {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return xerrors.Errorf("wait for the page to render output: %w", os.ErrDeadlineExceeded)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-changed:
		return nil
	case <-closed:
		return net.ErrClosed
	case <-expired:
		return xerrors.Errorf("wait for the page to render output: %w", os.ErrDeadlineExceeded)
	}
}

func (w *window) sent(n int) {
	w.mu.Lock()
	w.unacked += n
	w.mu.Unlock()
}

func (w *window) ack(n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n > w.unacked {
		return xerrors.Errorf("the page acknowledged %d bytes, but only %d are unacknowledged", n, w.unacked)
	}
	w.unacked -= n
	w.wake()
	return nil
}

func (w *window) setDeadline(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = t
	w.wake()
}

// wake wakes waiting writers. w.mu is held.
func (w *window) wake() {
	close(w.changed)
	w.changed = make(chan struct{})
}
