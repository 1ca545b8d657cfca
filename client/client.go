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
// # Keepalive
//
// The protocol has no keepalive, and an idle terminal sends nothing, so a
// connection through a network that silently stopped forwarding is never
// noticed by reading alone. For TCP, enable keepalive in the dial function
// (net.Dialer.KeepAliveConfig): the kernel then reports a dead peer as a
// read error. Options.ReadTimeout treats a connection silent for that long
// as dropped; use it only where output is expected regularly, because each
// reconnect replays output.
package client

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/resume"
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

// State is the connection state of a Client.
type State int

const (
	// StateConnected means a connection is up and the init was sent.
	StateConnected State = iota + 1
	// StateReconnecting means the connection dropped and the Client is
	// waiting to redial, or redialing.
	StateReconnecting
	// StateClosed is final: the session ended, Close was called, or the
	// Client gave up (see Options.MaxAttempts).
	StateClosed
)

// String implements fmt.Stringer.
func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Event is a state change, passed to Options.OnState.
type Event struct {
	// State is the new state.
	State State
	// Err says why: for StateReconnecting, what ended the connection or
	// failed the last attempt; for StateClosed, ErrSessionEnded, ErrClosed
	// or the error the Client gave up on. It is nil for StateConnected.
	Err error
	// Attempt counts the redials since the last connection that produced
	// output; it is 0 for the first connection.
	Attempt int
	// Delay is, for StateReconnecting, how long the Client waits before
	// the next dial.
	Delay time.Duration
}

// Options tunes a Client. The zero value is usable.
type Options struct {
	// OnState is called on every state change, in order, from the
	// Client's own goroutine. It must not block for long and must not
	// call Close (Close waits for the goroutine that calls OnState).
	OnState func(Event)
	// OnReplay is called by Read, in the goroutine that called Read, just
	// before Read returns the first output of a reconnected connection to
	// a server without the resume extension. That output starts with the
	// server's replay of recent output (buffered backend) or a repaint of
	// the screen (screen backend), so it repeats what was shown before the
	// drop. A terminal can reset its screen here; calling it from Read
	// orders it with the output already written. It is also called for a
	// reset when OnReset is nil.
	OnReplay func()
	// OnReset is called by Read, like OnReplay, when the server answered a
	// resume with a reset: what Read returns next redraws the terminal's
	// current state, so the terminal should be reset first (clear the
	// screen, scrollback and modes). It may come on the first connection
	// too, when the session already had output the server no longer holds.
	OnReset func()
	// DisableResume stops the Client from asking to resume: every
	// reconnect then gets the server's replay, as with a server without
	// the extension.
	DisableResume bool
	// MinBackoff and MaxBackoff bound the delay between redials. The
	// delay doubles with every attempt in a row without output, and a
	// random half of it is taken off so that many clients cut off at once
	// do not redial in step. Defaults: 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one dial plus sending the init. Default: 10 s.
	DialTimeout time.Duration
	// ReadTimeout, if positive, treats a connection that delivered no
	// output for this long as dropped (see the package comment).
	ReadTimeout time.Duration
	// MaxAttempts, if positive, is how many attempts in a row may fail
	// (a dial or init that failed, or a connection that ended without
	// output) before the Client gives up and closes. Zero retries until
	// Close.
	MaxAttempts int
	// MaxPendingInput bounds the input held while disconnected; Write
	// blocks while it is full. Default: 1 MiB.
	MaxPendingInput int
}

func (o Options) withDefaults() Options {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.MaxPendingInput <= 0 {
		o.MaxPendingInput = 1 << 20
	}
	return o
}

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
	conn     net.Conn
	state    State
	finalErr error // set when the client ends: why
	closed   bool  // Close was called
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
	c.offset = init.Offset
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, done, err := c.connect(ctx, c.resumeInit(init))
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

// resumeInit is init asking to resume from the output received so far,
// or not asking at all.
func (c *Client) resumeInit(init reconnectingpty.Init) reconnectingpty.Init {
	init.Resume = c.resume
	init.Offset = 0
	if c.resume {
		init.Offset = c.offset
	}
	return init
}

// connect dials and sends init, within the dial timeout; ctx bounds the
// dial only. The dial function's context lives on with the connection
// until done is called (see DialFunc).
func (c *Client) connect(ctx context.Context, init reconnectingpty.Init) (conn net.Conn, done context.CancelFunc, err error) {
	dialCtx, cancel := context.WithCancel(c.ctx)
	timer := time.AfterFunc(c.opts.DialTimeout, cancel)
	stopParent := context.AfterFunc(ctx, cancel)
	deadline := time.Now().Add(c.opts.DialTimeout)
	fail := func(err error) (net.Conn, context.CancelFunc, error) {
		timer.Stop()
		stopParent()
		cancel()
		if conn != nil {
			_ = conn.Close()
		}
		return nil, nil, err
	}
	conn, err = c.dial(dialCtx)
	if err != nil {
		return fail(xerrors.Errorf("dial: %w", err))
	}
	if conn == nil {
		return fail(xerrors.New("dial: dial function returned no connection"))
	}
	// A transport like net.Pipe blocks the init until the server reads
	// it; the deadline keeps an unresponsive server from hanging us.
	_ = conn.SetWriteDeadline(deadline)
	if err := reconnectingpty.WriteInit(conn, init); err != nil {
		return fail(xerrors.Errorf("send init: %w", err))
	}
	_ = conn.SetWriteDeadline(time.Time{})
	// From here on only the Client ends the dial's context.
	if !timer.Stop() || !stopParent() {
		if err := ctx.Err(); err != nil {
			return fail(xerrors.Errorf("dial: %w", err))
		}
		return fail(xerrors.Errorf("dial: timed out after %s", c.opts.DialTimeout))
	}
	return conn, cancel, nil
}

func (c *Client) emit(ev Event) {
	if c.opts.OnState != nil {
		c.opts.OnState(ev)
	}
}

// run owns the connections: it serves each until it ends, then redials or
// ends the client. It starts with conn, already dialled, whose init was
// sent at size generation gen.
func (c *Client) run(conn net.Conn, done context.CancelFunc, gen uint64) {
	defer c.wg.Done()
	failures := 0 // attempts in a row without output
	resumed := false
	for {
		got, err := c.serve(conn, gen, resumed)
		done() // the dial's context ends with its connection
		switch {
		case c.ctx.Err() != nil:
			c.finish(ErrClosed)
			return
		case got > 0 && errors.Is(err, io.EOF):
			c.finish(ErrSessionEnded)
			return
		case got > 0:
			failures = 0
		default:
			failures++
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = xerrors.New("connection closed before any output")
		}
		resumed = true
		conn, done, gen = c.reconnect(&failures, err)
		if conn == nil {
			return
		}
	}
}

// reconnect redials until it gets a connection, the client is closed, or
// MaxAttempts is used up; in the last two cases it finishes the client and
// returns nil.
func (c *Client) reconnect(failures *int, why error) (net.Conn, context.CancelFunc, uint64) {
	for {
		if c.opts.MaxAttempts > 0 && *failures >= c.opts.MaxAttempts {
			c.finish(xerrors.Errorf("reconnect: gave up after %d attempts without output: %w", *failures, why))
			return nil, nil, 0
		}
		delay := c.backoff(*failures)
		c.setState(StateReconnecting)
		c.emit(Event{State: StateReconnecting, Err: why, Attempt: *failures + 1, Delay: delay})
		t := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			t.Stop()
			c.finish(ErrClosed)
			return nil, nil, 0
		case <-t.C:
		}
		c.mu.Lock()
		init, gen := c.init, c.sizeGen
		c.mu.Unlock()
		conn, done, err := c.connect(c.ctx, c.resumeInit(init))
		if err != nil {
			if c.ctx.Err() != nil {
				c.finish(ErrClosed)
				return nil, nil, 0
			}
			*failures++
			why = err
			continue
		}
		c.mu.Lock()
		if c.closed {
			// Close ran during the dial and found no connection to close.
			c.mu.Unlock()
			_ = conn.Close()
			done()
			c.finish(ErrClosed)
			return nil, nil, 0
		}
		c.conn = conn
		c.state = StateConnected
		c.mu.Unlock()
		c.emit(Event{State: StateConnected, Attempt: *failures + 1})
		return conn, done, gen
	}
}

// backoff is the jittered delay before the next dial after n failures in
// a row: exponential from MinBackoff, capped at MaxBackoff, minus a random
// part of up to half.
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.MinBackoff
	for i := 0; i < n && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

func (c *Client) setState(s State) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

// finish ends the client for why: Read drains and then returns the final
// error, blocked writers wake up.
func (c *Client) finish(why error) {
	c.mu.Lock()
	c.finalErr = why
	c.state = StateClosed
	c.conn = nil
	c.space.Broadcast()
	c.mu.Unlock()
	// Reported before Read sees the end, so that a caller reacting to
	// io.EOF already finds the Closed event delivered.
	c.emit(Event{State: StateClosed, Err: why})
	close(c.out)
}

// serve relays one connection until it ends: output to Read, input and
// resizes from the pending state. It returns how many bytes of output it
// received and the error that ended it.
func (c *Client) serve(conn net.Conn, gen uint64, resumed bool) (int, error) {
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(writerDone)
		c.writeLoop(conn, gen, stop)
	}()
	got, err := c.readLoop(conn, resumed)
	// Hanging up ends a writer blocked in Write; the server sees the
	// client leave and keeps the session.
	hangUp(conn)
	close(stop)
	<-writerDone
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
	}
	c.mu.Unlock()
	return got, err
}

func (c *Client) readLoop(conn net.Conn, resumed bool) (int, error) {
	got := 0
	buf := make([]byte, 32<<10)
	st := stream{header: c.resume, replay: resumed}
	for {
		if c.opts.ReadTimeout > 0 {
			// Set before every read, so that time spent waiting for the
			// caller to take output does not count as silence.
			_ = conn.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout))
		}
		n, err := conn.Read(buf)
		got += n
		if n > 0 || (err != nil && len(st.held) > 0) {
			for _, ch := range c.take(&st, buf[:n], err != nil) {
				select {
				case c.out <- ch:
				case <-c.ctx.Done():
					return got, c.ctx.Err()
				}
			}
		}
		if err != nil {
			if st.redraw > 0 {
				// Cut off inside a redraw: what is shown is incomplete,
				// and only a fresh redraw can fix it. No session has
				// written this many bytes, so the server answers the next
				// resume with one.
				c.offset = math.MaxUint64
			}
			if errors.Is(err, io.EOF) {
				return got, io.EOF
			}
			return got, xerrors.Errorf("read output: %w", err)
		}
	}
}

// stream is what readLoop knows about the connection's output so far.
type stream struct {
	header bool   // the resume header may still be ahead
	held   []byte // the start of the output, while it may be a header
	replay bool   // the next output is an old server's replay
	redraw uint64 // bytes of a reset's redraw still to come
}

// take turns one read of output into the chunks for Read, keeping the
// resume offset: it strips the resume header, which may arrive split
// across reads, and counts the output that is not a redraw. last says
// that the connection ended, so that a header cannot complete any more.
func (c *Client) take(st *stream, p []byte, last bool) []chunk {
	var out []chunk
	if st.header {
		st.held = append(st.held, p...)
		h, n, status, err := resume.Parse(st.held)
		switch {
		case err != nil:
			// Not a header this client understands: take the server for
			// one without the extension, and stop asking.
			c.resume = false
			st.header = false
		case status == resume.NeedMore && !last:
			return nil
		case status == resume.Found:
			st.header, st.replay = false, false
			switch {
			case h.Mode == resume.Delta && h.Offset == c.offset:
				// Exactly where this client left off: nothing to report.
			case h.Mode == resume.Delta:
				// Not where it left off: what is shown is out of step.
				out = append(out, chunk{reset: true})
				c.offset = h.Offset
			default:
				out = append(out, chunk{reset: true})
				c.offset = h.Offset
				st.redraw = h.Len
			}
			st.held = st.held[n:]
		default:
			st.header = false // no header: a server without the extension
		}
		p, st.held = st.held, nil
	}
	if len(p) == 0 {
		return out
	}
	redraw := min(st.redraw, uint64(len(p)))
	st.redraw -= redraw
	c.offset += uint64(len(p)) - redraw
	data := append([]byte(nil), p...)
	if len(out) > 0 {
		out[len(out)-1].data = data
		return out
	}
	out = append(out, chunk{data: data, resumed: st.replay})
	st.replay = false
	return out
}

// writeLoop sends pending input and resizes on conn until stop is closed
// or a write fails. sent is the size generation conn already has.
func (c *Client) writeLoop(conn net.Conn, sent uint64, stop <-chan struct{}) {
	for {
		c.mu.Lock()
		resize := c.sizeGen != sent
		limit := len(c.pending)
		if resize {
			limit = min(limit, c.resizeAt)
		}
		data := takeInput(&c.pending, limit)
		c.resizeAt = max(c.resizeAt-len(data), 0)
		var req reconnectingpty.Request
		// The resize goes out once the input written before it has,
		// but for a split character, which waits for its remaining bytes
		// and can follow the resize.
		if resize && c.resizeAt < utf8.UTFMax {
			sent = c.sizeGen
			req.Height, req.Width = c.init.Height, c.init.Width
		}
		if len(data) > 0 {
			c.space.Broadcast()
		}
		c.mu.Unlock()

		if len(data) > 0 {
			// Input is sent at most once: once taken it is not put back,
			// so input in flight when a connection drops can be lost,
			// but is never typed twice.
			if err := reconnectingpty.WriteRequest(conn, reconnectingpty.Request{Data: string(data)}); err != nil {
				_ = conn.Close()
				return
			}
		}
		if req.Height != 0 && req.Width != 0 {
			if err := reconnectingpty.WriteRequest(conn, req); err != nil {
				_ = conn.Close()
				return
			}
		}
		if len(data) > 0 || req.Height != 0 {
			continue
		}
		select {
		case <-stop:
			return
		case <-c.wake:
		}
	}
}

// takeInput removes and returns the input to send next: at most limit and
// maxRequestData bytes, ending on a character boundary. The data travels
// as a JSON string, which would turn a split UTF-8 sequence into U+FFFD,
// so an incomplete sequence at the end waits for the rest of its bytes.
func takeInput(pending *[]byte, limit int) []byte {
	p := *pending
	n := min(limit, maxRequestData)
	// Back up over a trailing, possibly incomplete, sequence.
	for i := n - 1; i >= 0 && i >= n-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:n]) {
				n = i
			}
			break
		}
	}
	out := append([]byte(nil), p[:n]...)
	*pending = p[n:]
	if len(*pending) == 0 {
		*pending = nil
	}
	return out
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
		room := c.opts.MaxPendingInput - len(c.pending)
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

// hangUpGrace bounds how long a hang-up waits for the server to close.
const hangUpGrace = 250 * time.Millisecond

// closeWrite half-closes conn, if its transport can, and bounds the reads
// that follow by hangUpGrace; it reports whether it did.
func closeWrite(conn net.Conn) bool {
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return false
	}
	_ = conn.SetReadDeadline(time.Now().Add(hangUpGrace))
	return true
}

// hangUp closes conn so that the server sees the client leave (EOF on its
// side) rather than a reset: closing a TCP socket that still holds unread
// output resets the connection, which the server cannot tell from a network
// failure. It half-closes, discards what output is still on its way for at
// most hangUpGrace, then closes.
func hangUp(conn net.Conn) {
	if closeWrite(conn) {
		_, _ = io.Copy(io.Discard, conn)
	}
	_ = conn.Close()
}
