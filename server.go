// Package reconnectingpty serves reconnecting terminal sessions on any
// net.Listener or net.Conn.
//
// A client sends an init frame naming a session UUID, then a stream of JSON
// input and resize requests, and reads the terminal's raw output. Every
// connection that names the same UUID shares one live session, which
// replays its recent output on attach and survives its connections for an
// inactivity timeout. The wire protocol is in docs/PROTOCOL.md.
//
// Every connection close is logged once as "reconnecting pty closed" with
// a structured attribution; see DisconnectReason.
//
// The embedding application can list the live sessions (Server.Sessions),
// close one (Server.CloseSession), serve a connection read-only
// (ConnOptions), choose how a shared terminal is sized (SizePolicy) and
// keep sessions with no connection alive (a negative Config.Timeout).
package reconnectingpty

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// ErrServerClosed is returned by Serve and ServeConn once the server has
// been shut down.
var ErrServerClosed = xerrors.New("reconnecting pty server closed")

// Config configures a Server. The zero value is usable: every field has a
// default, applied by NewServer.
type Config struct {
	// Logger receives the server's logs, including one
	// "reconnecting pty closed" line per connection. Default: discard.
	Logger slog.Logger
	// Commander creates the process of a new session.
	// Default: LocalCommander{}.
	Commander Commander
	// ReportConnection, if set, is called when a connection with a valid
	// init attaches; the function it returns is called once when that
	// connection closes, with the same code and reason that are logged.
	ReportConnection func(id uuid.UUID, remoteAddr string) (disconnected func(code int, reason string))
	// Metrics receives the server's metrics. Default: unregistered
	// collectors (see NewMetrics).
	Metrics *Metrics
	// Timeout is how long a session lives after its last connection
	// detaches. A negative Timeout keeps sessions with no connection alive
	// until their process exits, CloseSession closes them or the server
	// shuts down: for embedders that manage a session's lifetime
	// themselves. Default: 5 minutes.
	Timeout time.Duration
	// SizePolicy decides the terminal size when several writable
	// connections of different sizes share a session (buffered backend;
	// screen gives each connection its own display). Default: SizeLatest.
	SizePolicy SizePolicy
	// ConnOptions, if set, decides each connection's options (read-only)
	// once its init has been read, from the init and the connection as it
	// was handed to the server: its remote and local addresses, its TLS
	// state, a wrapper type of the caller's. It must not read from, write
	// to or close the connection. Its result is combined with the options
	// given to ServeConnWith: the more restrictive wins. It must be safe
	// for concurrent use.
	ConnOptions func(init Init, nc net.Conn) ConnOptions
	// BufferSize is how many bytes of recent output the buffered backend
	// replays on attach. Default: 64 KiB.
	BufferSize int
	// ResumeBufferSize is how many bytes of recent output a buffered
	// session keeps for clients that resume (docs/PROTOCOL.md): one that
	// reconnects having missed no more than this gets exactly the bytes
	// it missed, one further behind gets a reset and a redraw. One buffer
	// serves this and the replay, so a session keeps the larger of the
	// two; it grows with the output rather than being allocated at start.
	// Default: 1 MiB.
	ResumeBufferSize int
	// ScrollbackLines is how many lines above the screen a vt session
	// keeps and repaints on attach, so a reloaded page shows history, not
	// only the last screen. A negative value keeps none. Default: 1,000.
	ScrollbackLines int
	// Backend is used when the init asks for "auto" or nothing; auto here
	// means vt. Default: BackendAuto.
	Backend BackendType
	// ScreenPath is the GNU screen binary the screen backend runs.
	// Default: "screen", found on PATH.
	ScreenPath string
	// ConnQueueSize is how many bytes of output may wait for one slow
	// connection before it is cut off as a slow consumer, so that it never
	// holds up the session or the other connections. Default: 4 MiB or
	// twice BufferSize, whichever is larger.
	ConnQueueSize int
	// SlowConsumerTimeout is how long output may wait while every attached
	// connection is a quarter of ConnQueueSize behind; then they are cut
	// off as slow consumers and the output flows again. Meanwhile the
	// process's writes block, as on a slow terminal. Default: 10 seconds.
	SlowConsumerTimeout time.Duration
	// InitTimeout bounds how long a new connection may take to send its
	// init frame; a connection that takes longer is closed as a
	// protocol_error. Default: 10 seconds (a client sends its init in its
	// first write; the time only has to cover a slow network).
	InitTimeout time.Duration
	// MaxRequestSize bounds one JSON request of the input stream, counted
	// from its first byte to its last; one byte more is a protocol_error.
	// The server never holds a request whole (its data reaches the
	// terminal in 32 KiB pieces), so this bounds time, not memory.
	// Default: 4 MiB.
	MaxRequestSize int
	// MaxSessions bounds the live sessions; a connection that would create
	// one more is refused (limit_exceeded). Each session holds a PTY and a
	// process (4, with screen). Default: 1024, a quarter of Linux's
	// default PTY limit. -1: no limit.
	MaxSessions int
	// MaxConnections bounds the connections served at once, attached or
	// not; the excess is refused at once (limit_exceeded). Default: 4096.
	// -1: no limit.
	MaxConnections int
	// MaxConnectionsPerSession bounds the connections attached to one
	// session; the excess is refused (limit_exceeded). Default: 64. -1: no
	// limit.
	MaxConnectionsPerSession int
	// MaxStartups bounds the connections that have not sent their init
	// yet, like sshd's MaxStartups; the excess is refused at once
	// (limit_exceeded), so that idle connections cannot hold every file
	// descriptor until InitTimeout. Default: 64. -1: no limit.
	MaxStartups int
	// LogShortSessionID logs the first 8 hex digits of a session ID rather
	// than all of it. The ID is a capability (whoever knows it can use the
	// session), so logs that more people read than may use the sessions
	// should not carry it whole. Default: false.
	LogShortSessionID bool
}

func (c Config) withDefaults() (Config, error) {
	if c.Commander == nil {
		c.Commander = LocalCommander{}
	}
	if c.Metrics == nil {
		m, err := NewMetrics(nil, "")
		if err != nil {
			return c, err
		}
		c.Metrics = m
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.BufferSize == 0 {
		c.BufferSize = 64 << 10
	}
	if c.ScrollbackLines == 0 {
		c.ScrollbackLines = 1000
	}
	if c.ResumeBufferSize == 0 {
		c.ResumeBufferSize = 1 << 20
	}
	if c.SizePolicy == "" {
		c.SizePolicy = SizeLatest
	}
	if c.Backend == "" {
		c.Backend = BackendAuto
	}
	if c.ScreenPath == "" {
		c.ScreenPath = "screen"
	}
	if c.ConnQueueSize == 0 {
		c.ConnQueueSize = max(4<<20, 2*c.BufferSize)
	}
	if c.SlowConsumerTimeout == 0 {
		c.SlowConsumerTimeout = 10 * time.Second
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.MaxRequestSize == 0 {
		c.MaxRequestSize = 4 << 20
	}
	for _, l := range []struct {
		v   *int
		def int
	}{
		{&c.MaxSessions, 1024},
		{&c.MaxConnections, 4096},
		{&c.MaxConnectionsPerSession, 64},
		{&c.MaxStartups, 64},
	} {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	switch {
	case c.BufferSize < 0:
		return c, xerrors.Errorf("buffer size %d is negative", c.BufferSize)
	case c.ResumeBufferSize < 0:
		return c, xerrors.Errorf("resume buffer size %d is negative", c.ResumeBufferSize)
	case c.ConnQueueSize < 0:
		return c, xerrors.Errorf("connection queue size %d is negative", c.ConnQueueSize)
	case c.ConnQueueSize < c.BufferSize:
		return c, xerrors.Errorf("connection queue size %d is smaller than the buffer size %d it must hold", c.ConnQueueSize, c.BufferSize)
	case c.SlowConsumerTimeout < 0:
		return c, xerrors.Errorf("slow consumer timeout %s is negative", c.SlowConsumerTimeout)
	case c.InitTimeout < 0:
		return c, xerrors.Errorf("init timeout %s is negative", c.InitTimeout)
	case c.MaxRequestSize < 0:
		return c, xerrors.Errorf("max request size %d is negative", c.MaxRequestSize)
	case c.MaxSessions < -1:
		return c, xerrors.Errorf("max sessions %d: want a positive number, or -1 for no limit", c.MaxSessions)
	case c.MaxConnections < -1:
		return c, xerrors.Errorf("max connections %d: want a positive number, or -1 for no limit", c.MaxConnections)
	case c.MaxConnectionsPerSession < -1:
		return c, xerrors.Errorf("max connections per session %d: want a positive number, or -1 for no limit", c.MaxConnectionsPerSession)
	case c.MaxStartups < -1:
		return c, xerrors.Errorf("max startups %d: want a positive number, or -1 for no limit", c.MaxStartups)
	}
	if _, err := parseBackendType(string(c.Backend)); err != nil {
		return c, xerrors.Errorf("default backend: %w", err)
	}
	if err := parseSizePolicy(c.SizePolicy); err != nil {
		return c, err
	}
	return c, nil
}

// Server serves reconnecting PTY sessions. Create it with NewServer, serve
// with Serve or ServeConn, and end it with Shutdown or Close, which kill
// every session's process.
type Server struct {
	cfg     Config
	logger  slog.Logger
	metrics *Metrics

	// ctx is cancelled when the server shuts down, which closes every
	// session.
	ctx    context.Context
	cancel context.CancelFunc

	sessions sync.Map // uuid.UUID -> *session

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	wg     sync.WaitGroup // connection handlers and live sessions

	connCount atomic.Int64
	startups  int // connections without an init yet; guarded by mu
	live      int // sessions counted against MaxSessions; guarded by mu
	screen    *screenHost
	warnOnce  sync.Once
	// readBufs lends PTY readers their read buffers (*[]byte) while they
	// have output in hand.
	readBufs sync.Pool

	procs *procTable // finds and kills the processes of sessions
	// inherited are the descriptors a child must not inherit (see
	// procStarter), listed when the server is created.
	inherited []int
	// starter forks every child; started by the first start and stopped
	// by Shutdown. Both guarded by mu.
	starter        *procStarter
	starterStopped bool
}

// NewServer validates cfg, applies its defaults and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, xerrors.Errorf("reconnecting pty config: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		logger:    cfg.Logger,
		metrics:   cfg.Metrics,
		ctx:       ctx,
		cancel:    cancel,
		conns:     map[*conn]struct{}{},
		procs:     newProcTable(),
		inherited: inheritableFDs(),
	}
	s.screen = newScreenHost(s)
	return s, nil
}

// ConnCount is the number of connections being served.
func (s *Server) ConnCount() int64 { return s.connCount.Load() }

// Serve accepts connections on l and serves each. Cancelling ctx stops
// accepting and shuts the server down: every session is closed (its process
// killed) and each attached connection receives the remaining output, then
// EOF. Cancelling hardCtx as well closes connections at once, even those
// not reading. Serve closes l and returns only after every goroutine it or
// the server started has returned; it returns nil after a shutdown through
// ctx, otherwise the error that stopped it.
func (s *Server) Serve(ctx, hardCtx context.Context, l net.Listener) error {
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		_ = l.Close()
	}()

	var serveErr error
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// Out of file descriptors and the like pass; wait and retry
			// rather than drop every session.
			if isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger.Warn(ctx, "accept reconnecting pty connection; retrying", slog.Error(err), slog.F("retry_in", backoff.String()))
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				continue
			}
			serveErr = xerrors.Errorf("accept: %w", err)
			break
		}
		backoff = 0
		if !s.goServe(hardCtx, nc) {
			serveErr = ErrServerClosed
			break
		}
	}
	close(stop)
	watcher.Wait()
	if err := s.Shutdown(hardCtx); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

func isTemporary(err error) bool {
	var ne net.Error
	if xerrors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return xerrors.Is(err, syscall.EMFILE) || xerrors.Is(err, syscall.ENFILE) ||
		xerrors.Is(err, syscall.ECONNABORTED) || xerrors.Is(err, syscall.ENOBUFS) || xerrors.Is(err, syscall.ENOMEM)
}

// ServeConn serves one already-accepted connection, for callers that run
// their own accept loop (a WebSocket bridge, say). It returns when the
// connection has closed, with ErrServerClosed if the server was shut down
// before it began. Cancelling ctx closes the connection; the session lives
// on.
//
// What the server calls on nc: Read, Write, SetDeadline and its kin (a
// deadline in the past interrupts a connection from under a lock, so they
// must not block), RemoteAddr and Close, from the connection's own
// goroutines. When the session itself ends (its process exited, it timed
// out, the server shut down) and nc has a CloseWrite method, the server
// calls CloseWrite after the last byte of output, and only then: a bridge
// can rely on it to tell its client the session is over rather than the
// connection lost.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) error {
	return s.ServeConnWith(ctx, nc, ConnOptions{})
}

// goServe starts a handler for nc; it reports false when the server is closed.
func (s *Server) goServe(ctx context.Context, nc net.Conn) bool {
	c, refused := s.track(nc)
	if refused != nil {
		s.refuse(ctx, nc, *refused)
		return refused.reason != DisconnectServerShutdown
	}
	go s.handle(ctx, c)
	return true
}

// track registers a connection, adding it to the wait group, unless the
// server is closed or a limit refuses it; then it returns why.
func (s *Server) track(nc net.Conn) (*conn, *disconnect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, &disconnect{reason: DisconnectServerShutdown, detail: "server closed"}
	}
	if over(len(s.conns), s.cfg.MaxConnections) {
		s.metrics.limitHit(limitConnections)
		return nil, &disconnect{reason: DisconnectLimitExceeded, detail: "MaxConnections: " + strconv.Itoa(s.cfg.MaxConnections) + " connections are served already"}
	}
	if over(s.startups, s.cfg.MaxStartups) {
		s.metrics.limitHit(limitStartups)
		return nil, &disconnect{reason: DisconnectLimitExceeded, detail: "MaxStartups: " + strconv.Itoa(s.cfg.MaxStartups) + " connections are waiting to send their init already"}
	}
	c := &conn{Conn: nc}
	s.conns[c] = struct{}{}
	s.startups++
	s.wg.Add(1)
	return c, nil
}

// refuse closes a connection that is not served, at once: a TCP one is
// reset, so that the client does not take it for its session's end.
func (s *Server) refuse(ctx context.Context, nc net.Conn, d disconnect) {
	s.metrics.connections.Inc()
	if l, ok := nc.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = nc.Close()
	s.logClose(ctx, s.logger.With(slog.F("remote_addr", remoteAddr(nc))), nil, d)
}

// Shutdown stops the server: new connections are refused, every session is
// closed and its process killed, and each attached connection gets the
// remaining output, then EOF. If hardCtx ends first, the remaining
// connections are closed at once. Shutdown returns when every goroutine the
// server started has returned.
func (s *Server) Shutdown(hardCtx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-hardCtx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.end(disconnect{reason: DisconnectServerShutdown, detail: "forced close"})
			c.interrupt()
		}
		s.mu.Unlock()
		<-done
	}
	s.screen.cleanup()
	s.mu.Lock()
	st := s.starter
	s.starter, s.starterStopped = nil, true
	s.mu.Unlock()
	if st != nil {
		st.stop()
	}
	return nil
}

// Close shuts the server down like Shutdown, without waiting for slow
// connections to read their remaining output.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

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

// handle serves one connection from init to close.
func (s *Server) handle(ctx context.Context, c *conn) {
	defer s.wg.Done()
	s.connCount.Add(1)
	s.metrics.connections.Inc()
	s.metrics.connectionsActive.Inc()

	addr := remoteAddr(c)
	logger := s.logger.With(slog.F("remote_addr", addr))

	// Cancelling the caller's context, or shutting the server down before
	// the connection has attached, closes it now; once attached, the
	// session's close flushes output to it first.
	defer afterFunc(ctx, func() {
		c.end(disconnect{reason: DisconnectServerShutdown, detail: "context canceled"})
		c.interrupt()
	})()
	defer afterFunc(s.ctx, func() {
		c.mu.Lock()
		attached := c.attached
		c.mu.Unlock()
		if !attached && c.end(disconnect{reason: DisconnectServerShutdown, detail: "server closed"}) {
			c.interrupt()
		}
	})()

	d, init, disconnected := s.serve(ctx, c, logger)
	if init.ID != uuid.Nil {
		logger = logger.With(slog.F("session_id", s.logID(init.ID)))
	}
	if rd, ok := c.reason(); ok {
		d = rd
	} else if d.reason == DisconnectNetworkError {
		c.mu.Lock()
		if c.writeErr != nil {
			d.detail = "write output: " + c.writeErr.Error()
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	sessionEnded := c.sessionEnded
	c.mu.Unlock()
	if !sessionEnded && d.reason != DisconnectGraceful {
		// A clean EOF tells a client its session is over. Any other close
		// (a slow consumer cut off, a protocol error) resets a TCP
		// connection instead, so that a client reconnects rather than
		// taking it for the end of the session.
		if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
			_ = l.SetLinger(0)
		}
	}
	_ = c.Close()
	s.initDone(c)
	// Counted out before the close is reported, so that whoever sees the
	// report sees the count without it.
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connCount.Add(-1)
	s.metrics.connectionsActive.Dec()
	s.logClose(ctx, logger, disconnected, d)
}

// serve reads the init, attaches to the session and relays input until the
// connection ends; it returns how it ended unless c.end recorded that.
func (s *Server) serve(ctx context.Context, c *conn, logger slog.Logger) (disconnect, Init, func(int, string)) {
	if s.cfg.InitTimeout > 0 {
		c.setReadDeadline(time.Now().Add(s.cfg.InitTimeout))
	}
	init, err := ReadInit(c)
	s.initDone(c)
	if err != nil {
		s.metrics.errors.WithLabelValues(errorTypeInit).Inc()
		d := initDisconnect(err)
		if d.timeout {
			s.metrics.limitHit(limitInitTimeout)
		}
		return d, init, nil
	}
	// Not a plain SetReadDeadline: that would undo an interrupt that came
	// in the meantime (a cancelled ctx) and leave the read hanging.
	c.setReadDeadline(time.Time{})
	logger = logger.With(slog.F("session_id", s.logID(init.ID)))

	var disconnected func(int, string)
	if s.cfg.ReportConnection != nil {
		disconnected = s.cfg.ReportConnection(init.ID, remoteAddr(c))
	}
	opts := c.opts
	if s.cfg.ConnOptions != nil {
		hooked := s.cfg.ConnOptions(init, c.Conn)
		if err := hooked.validate(&s.cfg); err != nil {
			// The embedder's mistake, not the client's: logged as an
			// error, and the client is told as if the start failed.
			logger.Error(ctx, "Config.ConnOptions returned invalid options", slog.Error(err))
			return disconnect{reason: DisconnectStartFailed, detail: err.Error()}, init, disconnected
		}
		opts = opts.merge(hooked)
	}
	if opts.ReadOnly {
		logger = logger.With(slog.F("read_only", true))
	}
	backend, err := parseBackendType(init.BackendType)
	if err != nil {
		s.metrics.errors.WithLabelValues(errorTypeInit).Inc()
		return disconnect{reason: DisconnectProtocolError, detail: err.Error()}, init, disconnected
	}
	height, width := init.Height, init.Width
	if height == 0 || width == 0 {
		height, width = 24, 80
	}

	req := attachRequest{height: height, width: width, resume: init.Resume, offset: init.Offset, queueSize: opts.queueSize(&s.cfg)}
	att, d, err := s.attach(c, init, backend, req, opts.ReadOnly, logger)
	if err != nil {
		if xerrors.Is(err, ErrSessionNotFound) {
			// Nothing to watch: end the output as a session's end does,
			// so the viewer stops reconnecting.
			c.closeWrite()
			_, _ = io.Copy(io.Discard, c)
		}
		return d, init, disconnected
	}
	defer att.detach()
	logger.Debug(ctx, "reconnecting pty attached", slog.F("height", height), slog.F("width", width))
	return s.relayInput(ctx, c, att, opts.ReadOnly, logger), init, disconnected
}

func initDisconnect(err error) disconnect {
	var ie *initError
	if xerrors.As(err, &ie) && ie.protocol {
		return disconnect{reason: DisconnectProtocolError, detail: err.Error()}
	}
	var ne net.Error
	if xerrors.As(err, &ne) && ne.Timeout() {
		return disconnect{reason: DisconnectProtocolError, detail: "no init before the init timeout (InitTimeout): " + err.Error(), timeout: true}
	}
	return disconnect{reason: DisconnectNetworkError, detail: err.Error()}
}

// attach finds or creates the session for init and attaches c to it. A
// read-only connection only finds: it gets ErrSessionNotFound rather than
// a new session.
func (s *Server) attach(c *conn, init Init, backend BackendType, req attachRequest, readOnly bool, logger slog.Logger) (attachment, disconnect, error) {
	// A session found just as it ends cannot be attached to; the retry
	// starts a fresh one in its place.
	for attempt := 0; ; attempt++ {
		var v any
		loaded := true
		if readOnly {
			v, loaded = s.sessions.Load(init.ID)
			if !loaded {
				return nil, disconnect{reason: DisconnectStartFailed, detail: "read-only connection: no live session with this ID"}, ErrSessionNotFound
			}
		} else {
			v, loaded = s.sessions.LoadOrStore(init.ID, newSession(s, init.ID))
		}
		sess := v.(*session)
		if !loaded {
			s.startSession(sess, init, backend, req.height, req.width, logger)
		}
		<-sess.ready
		if sess.err != nil {
			if readOnly {
				return nil, disconnect{reason: DisconnectStartFailed, detail: "read-only connection: no live session with this ID"}, ErrSessionNotFound
			}
			if xerrors.Is(sess.err, ErrServerClosed) {
				return nil, disconnect{reason: DisconnectServerShutdown, detail: "server closed"}, sess.err
			}
			if xerrors.Is(sess.err, errLimit) {
				return nil, disconnect{reason: DisconnectLimitExceeded, detail: sess.err.Error()}, sess.err
			}
			return nil, disconnect{reason: DisconnectStartFailed, detail: sess.err.Error()}, sess.err
		}
		c.mu.Lock()
		c.attached = true
		c.mu.Unlock()
		att, err := sess.attach(c, req, readOnly)
		if err == nil {
			return att, disconnect{}, nil
		}
		c.mu.Lock()
		c.attached = false
		c.mu.Unlock()
		if xerrors.Is(err, errLimit) {
			s.metrics.limitHit(limitSessionConnections)
			return nil, disconnect{reason: DisconnectLimitExceeded, detail: err.Error()}, err
		}
		s.sessions.CompareAndDelete(init.ID, sess)
		if s.ctx.Err() != nil {
			return nil, disconnect{reason: DisconnectServerShutdown, detail: "server closed"}, ErrServerClosed
		}
		if !xerrors.Is(err, errSessionEnded) || attempt >= 3 {
			return nil, disconnect{reason: DisconnectStartFailed, detail: "attach: " + err.Error()}, err
		}
	}
}

// startSession creates sess's backend, which ends it by calling
// sess.ended; on failure it records the error and unregisters sess.
func (s *Server) startSession(sess *session, init Init, backend BackendType, height, width uint16, logger slog.Logger) {
	defer close(sess.ready)
	// The session outlives the connection that created it: log it as itself.
	logger = s.logger.With(slog.F("session_id", s.logID(init.ID)))
	sess.logger = logger
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.err = ErrServerClosed
		s.sessions.CompareAndDelete(init.ID, sess)
		return
	}
	if over(s.live, s.cfg.MaxSessions) {
		s.mu.Unlock()
		s.metrics.limitHit(limitSessions)
		sess.err = xerrors.Errorf("%w: MaxSessions: %d sessions are live already", errLimit, s.cfg.MaxSessions)
		s.sessions.CompareAndDelete(init.ID, sess)
		return
	}
	s.live++    // undone by sessionGone
	s.wg.Add(1) // done by sess.ended, or below
	s.mu.Unlock()

	r, err := s.newRPTY(init, backend, height, width, logger, sess.ended)
	if err != nil {
		s.sessionGone()
		s.wg.Done()
		s.metrics.errors.WithLabelValues(errorTypeStart).Inc()
		logger.Warn(s.ctx, "reconnecting pty session failed to start", slog.Error(err))
		sess.err = err
		s.sessions.CompareAndDelete(init.ID, sess)
		return
	}
	sess.rpty = r
	sess.started = time.Now()
	sess.backend = backendName(r)
	sess.command = init.Command
	_, sess.ownDisplays = r.(*screenSession)
	sess.size = termSize{height, width}
	sess.timer = sess.newIdleTimer()
	s.metrics.sessionStarted(sess.backend)
	fields := []slog.Field{slog.F("backend", string(sess.backend)), slog.F("height", height), slog.F("width", width)}
	if p, ok := r.(pider); ok {
		fields = append(fields, slog.F("pid", p.pid()))
	}
	logger.Info(s.ctx, "reconnecting pty session started", fields...)
	sess.stopShutdown = afterFunc(s.ctx, func() {
		r.close(disconnect{reason: DisconnectServerShutdown, detail: "server closed"})
	})
}

// newRPTY starts the backend chosen for the session.
// onDone is called by the backend, last, once it is over.
func (s *Server) newRPTY(init Init, backend BackendType, height, width uint16, logger slog.Logger, onDone func()) (rpty, error) {
	cmd, err := s.cfg.Commander.Command(s.ctx, CommandRequest{
		ID: init.ID, Command: init.Command, Container: init.Container, ContainerUser: init.ContainerUser,
	})
	if err != nil {
		return nil, xerrors.Errorf("create command: %w", err)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = terminalEnv(cmd.Env)
	if backend == BackendAuto {
		backend = s.cfg.Backend
	}
	switch backend {
	case BackendScreen:
		if s.screen.available() {
			return s.screen.start(init.ID, cmd, height, width, logger, onDone)
		}
		s.metrics.errors.WithLabelValues(errorTypeScreenUnavailable).Inc()
		s.warnOnce.Do(func() {
			logger.Warn(s.ctx, "screen backend requested but screen is not installed; using the buffered backend",
				slog.F("screen_path", s.cfg.ScreenPath))
		})
	case BackendVT, BackendAuto:
		return startVT(s, cmd, height, width, logger, onDone)
	}
	return startBuffered(s, cmd, height, width, logger, onDone)
}

// logClose writes the one attributed line every connection close gets and
// tells the report hook.
func (s *Server) logClose(ctx context.Context, logger slog.Logger, disconnected func(int, string), d disconnect) {
	s.metrics.disconnects.WithLabelValues(string(d.reason)).Inc()
	fields := []slog.Field{
		slog.F("connect_type", ConnectTypeAgentToClient),
		slog.F("disconnect_reason", string(d.reason)),
		slog.F("disconnect_expected", d.reason.Expected()),
		slog.F("disconnect_initiator", string(d.reason.Initiator())),
		slog.F("disconnect_detail", d.detail),
		slog.F("exit_code", d.code()),
	}
	if d.reason.Expected() {
		logger.Info(ctx, "reconnecting pty closed", fields...)
	} else {
		logger.Warn(ctx, "reconnecting pty closed", fields...)
	}
	if disconnected != nil {
		disconnected(d.code(), string(d.reason))
	}
}

// lookScreen reports the screen binary's path, if there is one.
func lookScreen(path string) (string, bool) {
	p, err := exec.LookPath(path)
	return p, err == nil
}
