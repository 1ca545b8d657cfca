package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
)

// resumeInit is init asking to resume from the output received so far,
// or not asking at all.
func (c *Client) resumeInit(init reconnectingpty.Init) reconnectingpty.Init {
	init.Resume = c.resume
	init.Offset = 0
	if c.resume {
		init.Offset = c.offset
	}
	init.Link, init.InputOffset = c.linkID, 0
	if c.linkID != "" {
		c.mu.Lock()
		init.InputOffset = c.ackedOff
		c.mu.Unlock()
	}
	return init
}

// redialEvery is how often connect starts another attempt while earlier
// ones are still pending, and maxAttempts how many may be pending at
// once. A dial whose SYN was lost in an outage waits for the kernel's next
// retransmission (1, 2, 4 s... apart); a fresh attempt every second means
// that one goes out within a second of the network's return.
//
// A signal that the network changed (netChanged, see watchNetwork) starts
// an attempt at once, giving up the oldest pending one if need be (its
// SYN may have gone out on a path that no longer exists), at most every
// kickSpacing so that a burst of changes costs one dial.
const (
	redialEvery     = time.Second
	maxDialAttempts = 4
	kickSpacing     = 100 * time.Millisecond
)

// connect dials and sends init, racing attempts (see redialEvery): the
// first to connect wins, the others are cancelled. ctx bounds the dials
// only. The dial function's context lives on with the connection until
// done is called (see DialFunc). netChanged, if not nil, signals a
// network change.
func (c *Client) connect(ctx context.Context, init reconnectingpty.Init, netChanged <-chan struct{}) (net.Conn, context.CancelFunc, error) {
	type result struct {
		id   int
		conn net.Conn
		done context.CancelFunc
		err  error
	}
	raceCtx, stopRace := context.WithCancel(ctx)
	defer stopRace()
	results := make(chan result)
	// The pending attempts, oldest first; kicked: given up for a newer
	// one on a network change, so its error says nothing.
	type attempt struct {
		id     int
		cancel context.CancelFunc
		kicked bool
	}
	var pending []*attempt
	nextID := 0
	start := func() {
		id := nextID
		nextID++
		attemptCtx, cancel := context.WithCancel(raceCtx)
		pending = append(pending, &attempt{id: id, cancel: cancel})
		go func() {
			conn, done, err := c.connectOnce(attemptCtx, init)
			results <- result{id, conn, done, err}
		}()
	}
	start()
	tick := time.NewTicker(redialEvery)
	defer tick.Stop()
	var lastKick time.Time
	var won *result
	var firstErr error
	for len(pending) > 0 {
		select {
		case r := <-results:
			kicked := false
			for i, a := range pending {
				if a.id == r.id {
					a.cancel()
					kicked = a.kicked
					pending = append(pending[:i], pending[i+1:]...)
					break
				}
			}
			switch {
			case r.err != nil:
				if firstErr == nil && !kicked {
					firstErr = r.err
				}
			case won == nil:
				won = &r
				stopRace() // the others give up
			default:
				_ = r.conn.Close()
				r.done()
			}
		case <-tick.C:
			if won == nil && len(pending) < maxDialAttempts {
				start()
			}
		case <-netChanged:
			if won != nil || time.Since(lastKick) < kickSpacing {
				continue
			}
			lastKick = time.Now()
			if len(pending) >= maxDialAttempts {
				// Its result still comes, as a cancelled dial.
				for _, a := range pending {
					if !a.kicked {
						a.kicked = true
						a.cancel()
						break
					}
				}
			}
			start()
			tick.Reset(redialEvery)
		}
	}
	if won != nil {
		return won.conn, won.done, nil
	}
	if firstErr == nil {
		// Only when every attempt was given up, which the newest never is.
		firstErr = xerrors.New("dial: every attempt was given up")
	}
	return nil, nil, firstErr
}

// connectOnce dials and sends init, within the dial timeout; ctx bounds
// the dial only.
func (c *Client) connectOnce(ctx context.Context, init reconnectingpty.Init) (conn net.Conn, done context.CancelFunc, err error) {
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
	tuneTCP(conn, c.opts.TCPUserTimeout)
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
		c.prepareResend()
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
	// Where the platform tells of network changes (Linux: rtnetlink), one
	// means the path may be back: redial at once. Without it the redial
	// interval (MaxBackoff, redialEvery) bounds the wait.
	var netChanged <-chan struct{}
	if !c.opts.DisableNetworkWatch {
		watch := watchNetwork
		if c.opts.watchNetwork != nil {
			watch = c.opts.watchNetwork
		}
		if ch, stop, err := watch(); err == nil {
			netChanged = ch
			defer stop()
		}
	}
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
		case <-netChanged:
			// The path may be back: no reason to wait out the backoff.
			t.Stop()
		}
		c.mu.Lock()
		init, gen := c.init, c.sizeGen
		c.mu.Unlock()
		conn, done, err := c.connect(c.ctx, c.resumeInit(init), netChanged)
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
	var werr error
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(writerDone)
		werr = c.writeLoop(conn, gen, stop)
	}()
	got, err := c.readLoop(conn, resumed)
	// Hanging up ends a writer blocked in Write; the server sees the
	// client leave and keeps the session.
	hangUp(conn)
	close(stop)
	<-writerDone
	if errors.Is(err, io.EOF) && (errors.Is(werr, syscall.ECONNRESET) || errors.Is(werr, syscall.EPIPE)) {
		// The kernel reports a reset once, to whichever of reader and
		// writer asks first; the other then reads a plain EOF. This EOF
		// is that reset, not the session's end.
		err = xerrors.Errorf("connection reset while sending input: %w", werr)
	}
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
	var ls *linkStream
	if c.linkID != "" {
		ls = newLinkStream(c.linkID)
	}
	for {
		// Set before every read, so that time spent waiting for the
		// caller to take output does not count as silence; not after
		// Close, whose hang-up bounds the last reads.
		timeout := c.opts.ReadTimeout
		heartbeat := ls != nil && (ls.mode == linkOn || ls.mode == linkUndecided && c.linkExpected())
		if heartbeat {
			// On: the server answers every heartbeat. Undecided, after a
			// server that had the extension: its frame comes first, so
			// silence is a dead link. (A server not known to have it may
			// send nothing at all until typed at; the kernel's keepalive
			// watches that connection.)
			timeout = minPositive(timeout, c.opts.LinkTimeout)
		}
		if timeout > 0 && c.ctx.Err() == nil {
			_ = conn.SetReadDeadline(time.Now().Add(timeout))
		}
		n, err := conn.Read(buf)
		got += n
		p := buf[:n]
		if ls != nil {
			var lerr error
			p, lerr = ls.strip(c, p, err != nil)
			if lerr != nil && err == nil {
				err = xerrors.Errorf("link extension: %w", lerr)
			}
			if heartbeat && isTimeout(err) && c.ctx.Err() == nil {
				err = xerrors.Errorf("no output and no heartbeat answer for %s: %w", timeout, err)
			}
		}
		if len(p) > 0 || (err != nil && len(st.held) > 0) {
			for _, ch := range c.take(&st, p, err != nil) {
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

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	return min(a, b)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeLoop sends pending input, resizes and heartbeats on conn until
// stop is closed or a write fails. sent is the size generation conn
// already has.
func (c *Client) writeLoop(conn net.Conn, sent uint64, stop <-chan struct{}) error {
	var ticker *time.Ticker
	var tick <-chan time.Time
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	pingDue := false
	for {
		c.mu.Lock()
		if ticker == nil && c.link == linkOn {
			ticker = time.NewTicker(c.opts.HeartbeatInterval)
			tick = ticker.C
			pingDue = true // the first round trip at once
		}
		var data []byte
		var req reconnectingpty.Request
		switch {
		case c.resendFrom < len(c.unacked) && c.link == linkUndecided:
			// Resent input waits for the server's first bytes: one
			// without the extension would take it twice.
		case c.resendFrom < len(c.unacked):
			rest := c.unacked[c.resendFrom:]
			data = bytes.Clone(rest[:cutInput(rest, len(rest))])
			c.resendFrom += len(data)
		default:
			resize := c.sizeGen != sent
			limit := len(c.pending)
			if resize {
				limit = min(limit, c.resizeAt)
			}
			data = takeInput(&c.pending, limit)
			c.resizeAt = max(c.resizeAt-len(data), 0)
			// The resize goes out once the input written before it has,
			// but for a split character, which waits for its remaining bytes
			// and can follow the resize.
			if resize && c.resizeAt < utf8.UTFMax {
				sent = c.sizeGen
				req.Height, req.Width = c.init.Height, c.init.Width
			}
			if len(data) > 0 {
				c.space.Broadcast()
				data = sanitize(data)
				if c.linkID != "" && c.link != linkOff {
					// Kept until the server says the program took it,
					// and sent again after a drop until then. Without
					// the extension input is sent at most once: input
					// in flight when a connection drops can be lost.
					c.unacked = append(c.unacked, data...)
					c.resendFrom = len(c.unacked)
				}
			}
		}
		if pingDue && c.link == linkOn {
			c.pingSeq++
			req.Ping = c.pingSeq
			if c.pings == nil || len(c.pings) > 64 {
				c.pings = map[uint64]time.Time{}
			}
			c.pings[req.Ping] = time.Now()
		}
		pingDue = false
		c.mu.Unlock()

		if len(data) > 0 {
			if err := reconnectingpty.WriteRequest(conn, reconnectingpty.Request{Data: string(data)}); err != nil {
				_ = conn.Close()
				return err
			}
		}
		if req != (reconnectingpty.Request{}) {
			if err := reconnectingpty.WriteRequest(conn, req); err != nil {
				_ = conn.Close()
				return err
			}
		}
		if len(data) > 0 || req.Height != 0 {
			continue
		}
		select {
		case <-stop:
			return nil
		case <-c.wake:
		case <-tick:
			pingDue = true
		}
	}
}

// takeInput removes and returns the input to send next: at most limit and
// maxRequestData bytes, ending on a character boundary. The data travels
// as a JSON string, which would turn a split UTF-8 sequence into U+FFFD,
// so an incomplete sequence at the end waits for the rest of its bytes.
func takeInput(pending *[]byte, limit int) []byte {
	p := *pending
	n := cutInput(p, limit)
	out := append([]byte(nil), p[:n]...)
	*pending = p[n:]
	if len(*pending) == 0 {
		*pending = nil
	}
	return out
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

// cutInput is how much of p to send next: at most limit and
// maxRequestData bytes, backed up over a trailing, possibly incomplete,
// UTF-8 sequence.
func cutInput(p []byte, limit int) int {
	n := min(limit, maxRequestData)
	for i := n - 1; i >= 0 && i >= n-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:n]) {
				n = i
			}
			break
		}
	}
	return n
}
