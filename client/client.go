// Package client is a reconnecting client for the reconnecting PTY
// protocol (docs/PROTOCOL.md): it keeps one logical terminal alive across
// connection drops.
//
// Dial connects with a caller-supplied dial function and an init naming
// the session. The Client then reads the terminal's output (Read), sends
// input (Write) and resizes (Resize). When the connection drops it redials
// with jittered exponential backoff, sending an init with the same session
// ID and the latest size. When the session ends, Read returns io.EOF.
//
// # Resume
//
// The Client asks to resume (docs/PROTOCOL.md, the resume extension) unless
// Options.DisableResume is set: every init carries how many bytes of the
// session's output it has received, and a server with the extension
// answers with either the exact bytes missed (Read then continues the
// stream as if nothing happened: nothing repeated, nothing missing, no
// event) or a reset (Options.OnReset is called, then Read returns a redraw
// of the terminal's current state, then live output). A server without
// the extension sends no header; its replay follows and Options.OnReplay
// is called, as it always was.
//
// # Session end versus a dropped connection
//
// The protocol has no end-of-session message: the server ends the output
// of every attached connection when the session's process exits, it times
// out or the server shuts down, and the client reads a clean EOF. A broken
// network instead shows as a read error (a reset, a timeout). The Client
// decides as follows:
//
//   - A clean EOF after at least one byte arrived on that connection means
//     the session ended. (This module's server resets a TCP connection it
//     closes for any other reason, such as a client cut off for falling
//     behind, so over TCP the rule is exact; see docs/PROTOCOL.md.) This is final: the Client closes, Read returns
//     io.EOF and the state becomes StateClosed with ErrSessionEnded. A
//     server process that is killed outright usually closes its
//     connections cleanly too, and is treated the same way: its sessions
//     are gone with it, and the protocol says a clean close is an end.
//   - A clean EOF before any byte arrived is a drop, retried: every attach
//     replays output or starts a shell that prints a prompt, so a
//     connection closed without a byte was refused (the server was shutting
//     down, or the session could not start) rather than ended.
//   - A read or write error, a failed dial or init, and a read timeout
//     (Options.ReadTimeout) are drops, retried.
//
// Options.MaxAttempts bounds how many drops in a row without output are
// retried; by default the Client retries until it is closed.
//
// Cases the protocol does not let a client tell apart:
//
//   - If the session ends while the client is disconnected, the redial
//     with the same ID starts a fresh session, because the server forgets
//     ended sessions.
//   - A session whose command exits without printing anything looks like
//     a refusal, so each retry starts the command again (bounded by
//     MaxAttempts and the backoff).
//   - A transport that reports a network failure as a clean close (some
//     proxies do) makes a drop look like the session's end. A dial
//     function for such a transport should return a net.Conn whose Read
//     reports those failures as errors.
//
// # Dead links and exactly-once input
//
// The Client asks for the link extension (docs/PROTOCOL.md, docs/network.md)
// unless Options.DisableLink is set. A server with it answers a heartbeat
// the Client sends every Options.HeartbeatInterval (1 s) and says how much
// of the input the program has taken: a connection that delivers nothing
// for Options.LinkTimeout (3 s) is taken for dead and redialled, and input
// not yet taken is kept and sent again after a reconnect, where the server
// drops what it already gave the program, so input is delivered exactly
// once whatever the moment of a drop. Link reports the round trip.
//
// For a dial function that returns a *net.TCPConn the Client also sets TCP
// keepalive and TCP_USER_TIMEOUT (Options.TCPUserTimeout, 5 s), so that a
// server without the extension is watched by the kernel. Without the
// extension input is sent at most once: what is in flight when a
// connection drops can be lost. Options.ReadTimeout treats a connection
// silent for that long as dropped; use it only where output is expected
// regularly, because each reconnect replays output.
package client

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
)

// ErrSessionEnded is the reason a Client closes when the server ended the
// session: its process exited, it timed out, or the server shut down. Read
// returns io.EOF instead; Write and Resize return ErrSessionEnded.
var ErrSessionEnded = errors.New("reconnecting pty session ended")

// ErrClosed is returned by Read, Write and Resize after Close.
var ErrClosed = errors.New("reconnecting pty client closed")

// DialFunc opens a new transport connection to the server. It is called
// for the first connection and for every reconnect. Its ctx lives as long
// as the connection it returns: it is cancelled when the dial fails or
// times out (or, for the first dial, when Dial's ctx ends before the dial
// is done), when the Client is done with the connection (it dropped), or
// when the Client is closed. A dial function may therefore serve the
// connection in-process with ctx, e.g. with Server.ServeConn over net.Pipe.
type DialFunc func(ctx context.Context) (net.Conn, error)

// maxRequestData is the most input sent in one request, so that one
// paste does not make a request the server rejects as too large.
const maxRequestData = 32 << 10

// chunk is one read of output, tagged with the event Read reports before
// its data: the first output of a reconnected connection that replays
// (resumed), or a reset that redraws (reset). A reset chunk may have no
// data.
type chunk struct {
	data    []byte
	resumed bool
	reset   bool
}

// Client is one logical terminal session over a sequence of connections.
// Read, Write, Resize and Close may be called from different goroutines.
type Client struct {
	dial DialFunc
	opts Options

	// ctx is cancelled by Close; it ends dials, backoff waits and output
	// delivery.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the run goroutine and its per-connection writers

	out  chan chunk    // output, closed by run when it returns
	wake chan struct{} // tells the current writer there is work

	readMu sync.Mutex
	rest   chunk // the unread part of the chunk Read took last

	// offset is how many bytes of the session's output have been handed
	// to Read, redraws excluded; resume is whether inits ask to resume.
	// Only the run goroutine uses them.
	offset uint64
	resume bool

	mu      sync.Mutex
	space   *sync.Cond // signalled when pending input shrinks or the client ends
	init    reconnectingpty.Init
	sizeGen uint64 // incremented by Resize
	// resizeAt is where in pending the latest Resize was called: input
	// before it is sent before the resize, input after it after.
	resizeAt int
	pending  []byte // input not yet handed to a connection
	// The link extension: unacked is input sent (or to be sent again)
	// that the server has not said the program took, starting at input
	// offset ackedOff; resendFrom is how much of it the current
	// connection was sent. link is what the current connection's first
	// bytes said, linkKnown whether the last server that said had the
	// extension. pings are the heartbeats not answered yet, by token.
	unacked    []byte
	ackedOff   uint64
	resendFrom int
	link       linkMode
	linkKnown  bool
	pingSeq    uint64
	pings      map[uint64]time.Time
	rtt        time.Duration
	linkID     string // never changes after Dial; empty with DisableLink
	conn       net.Conn
	state      State
	finalErr   error // set when the client ends: why
	closed     bool  // Close was called
}

// Dial connects to a session and returns a Client for it. init names the
// session: a nil ID is replaced by a new random one (see ID), and Height
// and Width are the initial size. init.Offset is where resuming starts
// (0 for a client that has shown nothing of the session yet); Dial sets
// init.Resume from Options.DisableResume. ctx bounds only this first connection;
// if it fails, Dial returns the error without retrying. Later connections
// are retried as described in the package comment, until Close.
func Dial(ctx context.Context, dial DialFunc, init reconnectingpty.Init, opts Options) (*Client, error) {
	if dial == nil {
		return nil, xerrors.New("dial reconnecting pty: nil dial function")
	}
	if init.ID == uuid.Nil {
		init.ID = uuid.New()
	}
	c := &Client{
		dial: dial,
		opts: opts.withDefaults(),
		out:  make(chan chunk, 8),
		wake: make(chan struct{}, 1),
		init: init,
	}
	c.space = sync.NewCond(&c.mu)
	c.resume = !c.opts.DisableResume
	if !c.opts.DisableLink {
		c.linkID = newLinkID()
	}
	c.offset = init.Offset
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, done, err := c.connect(ctx, c.resumeInit(init), nil)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.conn = conn
	c.state = StateConnected
	c.emit(Event{State: StateConnected})
	c.wg.Add(1)
	go c.run(conn, done, 0)
	return c, nil
}

// ID is the session ID the Client attaches to.
func (c *Client) ID() uuid.UUID {
	return c.init.ID // never changes after Dial
}

// State is the Client's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Read reads terminal output. After a reconnect it continues the stream
// exactly, or after Options.OnReset with a redraw, or, from a server
// without the resume extension, after Options.OnReplay with its replay. It returns io.EOF once the session has ended and all
// of its output was read, ErrClosed after Close, or the error the Client
// gave up on.
func (c *Client) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		c.event()
		if len(c.rest.data) > 0 {
			break
		}
		ch, ok := <-c.out
		if !ok {
			return 0, c.readErr()
		}
		c.rest = ch
	}
	n := copy(p, c.rest.data)
	c.rest.data = c.rest.data[n:]
	return n, nil
}

// event reports the event of the chunk Read took last, once. c.readMu is
// held.
func (c *Client) event() {
	switch {
	case c.rest.reset && c.opts.OnReset != nil:
		c.opts.OnReset()
	case (c.rest.reset || c.rest.resumed) && c.opts.OnReplay != nil:
		c.opts.OnReplay()
	}
	c.rest.reset, c.rest.resumed = false, false
}

// endErr is why the client cannot take input any more, or nil. c.mu must
// be held.
func (c *Client) endErr() error {
	if c.closed {
		return ErrClosed
	}
	return c.finalErr
}

func (c *Client) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.finalErr, ErrSessionEnded) {
		return io.EOF
	}
	return c.finalErr
}

// Write sends p to the terminal as input. It returns once p is queued,
// without waiting for the network; while disconnected, input is held (up
// to Options.MaxPendingInput, beyond which Write blocks) and sent after the
// reconnect. It fails with ErrSessionEnded or ErrClosed once the Client
// has ended. Input is sent as JSON strings, so bytes that are not valid
// UTF-8 reach the terminal as U+FFFD.
func (c *Client) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	written := 0
	for written < len(p) {
		if err := c.endErr(); err != nil {
			return written, err
		}
		room := c.opts.MaxPendingInput - len(c.pending) - len(c.unacked)
		if room <= 0 {
			c.space.Wait()
			continue
		}
		n := min(room, len(p)-written)
		c.pending = append(c.pending, p[written:written+n]...)
		written += n
		c.signal()
	}
	return written, nil
}

// Resize sets the terminal size. It is sent now if connected, after the
// input written before it and before the input written after it, and is
// the size in the init of every later reconnect. A zero height or width
// is ignored, as the server ignores it. It fails like Write once the
// Client has ended.
func (c *Client) Resize(height, width uint16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.endErr(); err != nil {
		return err
	}
	if height == 0 || width == 0 {
		return nil
	}
	c.init.Height, c.init.Width = height, width
	c.sizeGen++
	c.resizeAt = len(c.pending)
	c.signal()
	return nil
}

// Close detaches from the session, which lives on on the server for its
// inactivity timeout, and stops every goroutine the Client started before
// it returns. Close is idempotent; it returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conn := c.conn
	c.space.Broadcast()
	c.mu.Unlock()
	c.cancel()
	if conn != nil {
		// The read loop sees the server's EOF, or the deadline, and the
		// connection's serve hangs up the rest of the way.
		if !closeWrite(conn) {
			_ = conn.Close()
		}
	}
	c.wg.Wait()
	return nil
}
