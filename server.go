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
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
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
	// Backend is used when the init asks for "auto" or nothing.
	// Default: BackendAuto.
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
	// init frame. Default: 30 seconds.
	InitTimeout time.Duration
	// MaxRequestSize bounds one JSON request of the input stream.
	// Default: 4 MiB.
	MaxRequestSize int
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
		c.InitTimeout = 30 * time.Second
	}
	if c.MaxRequestSize == 0 {
		c.MaxRequestSize = 4 << 20
	}
	switch {
	case c.BufferSize < 0:
		return c, xerrors.Errorf("buffer size %d is negative", c.BufferSize)
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

	// ctx is cancelled when the server shuts down; every session's
	// lifecycle watches it.
	ctx    context.Context
	cancel context.CancelFunc

	sessions sync.Map // uuid.UUID -> *session

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	wg     sync.WaitGroup // connection handlers and session lifecycles

	connCount atomic.Int64
	screen    *screenHost
	warnOnce  sync.Once
}

// NewServer validates cfg, applies its defaults and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, xerrors.Errorf("reconnecting pty config: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:     cfg,
		logger:  cfg.Logger,
		metrics: cfg.Metrics,
		ctx:     ctx,
		cancel:  cancel,
		conns:   map[*conn]struct{}{},
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
	c, ok := s.track(nc)
	if !ok {
		s.refuse(ctx, nc)
		return false
	}
	go s.handle(ctx, c)
	return true
}

// track registers a connection, adding it to the wait group, unless the
// server is closed.
func (s *Server) track(nc net.Conn) (*conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	c := &conn{Conn: nc}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c, true
}

func (s *Server) refuse(ctx context.Context, nc net.Conn) {
	s.metrics.connections.Inc()
	s.logClose(ctx, s.logger.With(slog.F("remote_addr", remoteAddr(nc))), nil,
		disconnect{reason: DisconnectServerShutdown, detail: "server closed"})
	_ = nc.Close()
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
	writeErr error
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
	if c.ended == nil {
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	}
}

// interrupt makes every pending and future read and write on the
// connection fail at once. Unlike Close it never blocks (closing a
// WebSocket waits for a handshake), so it is safe under locks; the
// connection's handler closes it.
func (c *conn) interrupt() {
	_ = c.SetDeadline(time.Unix(1, 0))
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
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
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
		logger = logger.With(slog.F("session_id", init.ID.String()))
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
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.InitTimeout))
	}
	init, err := ReadInit(c)
	if err != nil {
		s.metrics.errors.WithLabelValues(errorTypeInit).Inc()
		return initDisconnect(err), init, nil
	}
	_ = c.SetReadDeadline(time.Time{})
	logger = logger.With(slog.F("session_id", init.ID.String()))

	var disconnected func(int, string)
	if s.cfg.ReportConnection != nil {
		disconnected = s.cfg.ReportConnection(init.ID, remoteAddr(c))
	}
	opts := c.opts
	if s.cfg.ConnOptions != nil {
		opts = opts.merge(s.cfg.ConnOptions(init, c.Conn))
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

	att, d, err := s.attach(c, init, backend, height, width, opts.ReadOnly, logger)
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
		return disconnect{reason: DisconnectProtocolError, detail: "no init before the init timeout: " + err.Error()}
	}
	return disconnect{reason: DisconnectNetworkError, detail: err.Error()}
}

// attach finds or creates the session for init and attaches c to it. A
// read-only connection only finds: it gets ErrSessionNotFound rather than
// a new session.
func (s *Server) attach(c *conn, init Init, backend BackendType, height, width uint16, readOnly bool, logger slog.Logger) (attachment, disconnect, error) {
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
			s.startSession(sess, init, backend, height, width, logger)
		}
		<-sess.ready
		if sess.err != nil {
			if readOnly {
				return nil, disconnect{reason: DisconnectStartFailed, detail: "read-only connection: no live session with this ID"}, ErrSessionNotFound
			}
			if xerrors.Is(sess.err, ErrServerClosed) {
				return nil, disconnect{reason: DisconnectServerShutdown, detail: "server closed"}, sess.err
			}
			return nil, disconnect{reason: DisconnectStartFailed, detail: sess.err.Error()}, sess.err
		}
		c.mu.Lock()
		c.attached = true
		c.mu.Unlock()
		att, err := sess.attach(c, height, width, readOnly)
		if err == nil {
			return att, disconnect{}, nil
		}
		c.mu.Lock()
		c.attached = false
		c.mu.Unlock()
		s.sessions.CompareAndDelete(init.ID, sess)
		if s.ctx.Err() != nil {
			return nil, disconnect{reason: DisconnectServerShutdown, detail: "server closed"}, ErrServerClosed
		}
		if !xerrors.Is(err, errSessionEnded) || attempt >= 3 {
			return nil, disconnect{reason: DisconnectStartFailed, detail: "attach: " + err.Error()}, err
		}
	}
}

// startSession creates sess's backend and starts its lifecycle; on failure
// it records the error and unregisters sess.
func (s *Server) startSession(sess *session, init Init, backend BackendType, height, width uint16, logger slog.Logger) {
	defer close(sess.ready)
	// The session outlives the connection that created it: log it as itself.
	logger = s.logger.With(slog.F("session_id", init.ID.String()))
	sess.logger = logger
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.err = ErrServerClosed
		s.sessions.CompareAndDelete(init.ID, sess)
		return
	}
	s.wg.Add(1) // for the lifecycle, or undone below
	s.mu.Unlock()

	r, err := s.newRPTY(init, backend, height, width, logger)
	if err != nil {
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
	go sess.lifecycle(s.ctx)
}

// newRPTY starts the backend chosen for the session.
func (s *Server) newRPTY(init Init, backend BackendType, height, width uint16, logger slog.Logger) (rpty, error) {
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
			return s.screen.start(init.ID, cmd, height, width, logger)
		}
		s.metrics.errors.WithLabelValues(errorTypeScreenUnavailable).Inc()
		s.warnOnce.Do(func() {
			logger.Warn(s.ctx, "screen backend requested but screen is not installed; using the buffered backend",
				slog.F("screen_path", s.cfg.ScreenPath))
		})
	case BackendAuto:
		if runtime.GOOS == "linux" && s.screen.available() {
			return s.screen.start(init.ID, cmd, height, width, logger)
		}
	}
	return startBuffered(s, cmd, height, width, logger)
}

// relayInput decodes requests from c and applies them until the stream
// ends. A read-only connection's requests are decoded (its stream must
// still be well formed, and its close noticed) but go no further.
func (s *Server) relayInput(ctx context.Context, c *conn, att attachment, readOnly bool, logger slog.Logger) disconnect {
	lr := &requestLimitReader{r: c, max: s.cfg.MaxRequestSize}
	dec := json.NewDecoder(lr)
	logged := false
	for {
		lr.n = 0
		var req Request
		if err := dec.Decode(&req); err != nil {
			if xerrors.Is(err, io.EOF) {
				// A reset is reported once, to whichever of reader and
				// writer asks first; the other then sees a plain EOF. So
				// an EOF after a write failed with ECONNRESET is that
				// reset. (A reset after the client's FIN, when it hung up
				// cleanly and we wrote on, fails the write with EPIPE.)
				c.mu.Lock()
				werr := c.writeErr
				c.mu.Unlock()
				if xerrors.Is(werr, syscall.ECONNRESET) {
					s.metrics.errors.WithLabelValues(errorTypeNetwork).Inc()
					return disconnect{reason: DisconnectNetworkError, detail: "write output: " + werr.Error()}
				}
			}
			return s.requestDisconnect(err)
		}
		if readOnly {
			if s.ignoreReadOnly(req) && !logged {
				logged = true
				logger.Info(ctx, "input from a read-only connection ignored")
			}
			continue
		}
		if req.Data != "" {
			if err := att.write([]byte(req.Data)); err != nil {
				s.metrics.errors.WithLabelValues(errorTypeInput).Inc()
				if d, ok := c.reason(); ok {
					return d
				}
				s.logger.Warn(ctx, "write to reconnecting pty", slog.Error(err))
			}
		}
		if req.Height != 0 && req.Width != 0 {
			if err := att.resize(req.Height, req.Width); err != nil {
				s.logger.Debug(ctx, "resize reconnecting pty", slog.Error(err))
			}
		}
	}
}

var errRequestTooLarge = xerrors.New("request too large")

func (s *Server) requestDisconnect(err error) disconnect {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case xerrors.Is(err, io.EOF):
		return disconnect{reason: DisconnectGraceful}
	case xerrors.As(err, &syntaxErr), xerrors.As(err, &typeErr), xerrors.Is(err, errRequestTooLarge):
		s.metrics.errors.WithLabelValues(errorTypeRequest).Inc()
		return disconnect{reason: DisconnectProtocolError, detail: "decode request: " + err.Error()}
	case xerrors.Is(err, io.ErrUnexpectedEOF):
		s.metrics.errors.WithLabelValues(errorTypeRequest).Inc()
		return disconnect{reason: DisconnectProtocolError, detail: "connection closed inside a request"}
	}
	s.metrics.errors.WithLabelValues(errorTypeNetwork).Inc()
	return disconnect{reason: DisconnectNetworkError, detail: "read request: " + err.Error()}
}

// requestLimitReader fails a request that grows past max bytes, so one
// client cannot make the decoder buffer without bound.
type requestLimitReader struct {
	r   io.Reader
	n   int
	max int
}

func (l *requestLimitReader) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, xerrors.Errorf("%w: over %d bytes", errRequestTooLarge, l.max)
	}
	n, err := l.r.Read(p)
	l.n += n
	return n, err
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
