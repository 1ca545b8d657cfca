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
//
// Sessions outlive the program itself when it upgrades in place:
// Server.Upgrade executes a new program image in the same process, and the
// new image takes the sessions back with Inherited and Server.Restore
// (docs/upgrade.md).
package reconnectingpty

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"golang.org/x/xerrors"
)

// ErrServerClosed is returned by Serve and ServeConn once the server has
// been shut down.
var ErrServerClosed = xerrors.New("reconnecting pty server closed")

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
	// unlogged counts the connections out of conns whose close is not
	// logged yet (an upgrade waits for them); guarded by mu.
	unlogged int

	connCount atomic.Int64
	startups  int // connections without an init yet; guarded by mu
	live      int // sessions counted against MaxSessions; guarded by mu
	screen    *screenHost
	warnOnce  sync.Once
	// readBufs lends PTY readers their read buffers (*[]byte) while they
	// have output in hand.
	readBufs sync.Pool
	// greetBufs are spare greeting buffers (greetBuf); guarded by greetMu.
	greetMu   sync.Mutex
	greetBufs [][]byte
	// queueAllOutput turns off the PTY readers' direct writes to clients
	// that keep up (ptyAttachment.claim), so that a benchmark can measure
	// what they save.
	queueAllOutput bool
	// vtParseEachChunk has vt sessions' PTY readers parse each chunk as
	// they read it rather than in batches while output floods (see
	// vtParseBatch), so that a benchmark can compare the two in one run.
	vtParseEachChunk bool

	procs *procTable // finds and kills the processes of sessions
	// inherited are the descriptors a child must not inherit (see
	// procStarter), listed when the server is created.
	inherited []int
	// starter forks every child; started by the first start and stopped
	// by Shutdown. Both guarded by mu.
	starter        *procStarter
	starterStopped bool

	// upgradeMu is held by Upgrade while it carries the sessions, and
	// read-held by whatever starts a session or ends one (its process
	// killed or reaped), so that none does meanwhile.
	upgradeMu sync.RWMutex
	// upgrading is set while an upgrade is under way; guarded by mu.
	upgrading *upgradeRun
	// listeners are those Serve accepts on; guarded by mu.
	listeners map[net.Listener]struct{}
	// restoring is closed once every session Restore took over is
	// rebuilt; nil without a Restore. Guarded by mu.
	restoring chan struct{}
	// restored counts the sessions Restore took over; guarded by mu.
	restored int
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
		listeners: map[net.Listener]struct{}{},
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
//
// While Upgrade runs, Serve stops accepting (if l has a SetDeadline method,
// as TCP and Unix listeners do; otherwise connections it accepts meanwhile
// are closed with DisconnectServerUpgrade), and if the upgrade fails it
// accepts again.
func (s *Server) Serve(ctx, hardCtx context.Context, l net.Listener) error {
	s.mu.Lock()
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
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
			if s.waitUpgrade(ctx) {
				continue
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
	s.mu.Lock() // an upgrade reads it under mu
	c.fromServe = true
	s.mu.Unlock()
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
	if s.upgrading != nil && s.upgrading.refusing {
		return nil, &disconnect{reason: DisconnectServerUpgrade, detail: "the server is upgrading; reconnect"}
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

// lookScreen reports the screen binary's path, if there is one.
func lookScreen(path string) (string, bool) {
	p, err := exec.LookPath(path)
	return p, err == nil
}
