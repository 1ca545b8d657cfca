package reconnectingpty

import (
	"context"
	"io"
	"net"
	"os"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// handle serves one connection from init to close.
func (s *Server) handle(ctx context.Context, c *conn) {
	defer s.wg.Done()
	s.connCount.Add(1)
	s.metrics.connections.Inc()
	s.metrics.connectionsActive.Inc()

	addr := remoteAddr(c)
	logger := s.logger.With(slog.F("remote_addr", addr))
	tuneTCP(c.Conn, s.cfg.TCPUserTimeout)

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
	sessionEnded, carried := c.sessionEnded, c.carried
	c.mu.Unlock()
	if !sessionEnded && !carried && d.reason != DisconnectGraceful {
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
	s.unlogged++
	s.mu.Unlock()
	s.connCount.Add(-1)
	s.metrics.connectionsActive.Dec()
	defer func() {
		s.mu.Lock()
		s.unlogged--
		s.mu.Unlock()
	}()
	if carried {
		// Not closed for its client: the new image serves it.
		logger.Debug(ctx, "reconnecting pty connection carried to the new image")
		return
	}
	s.logClose(ctx, logger, disconnected, d)
}

// serve reads the init, attaches to the session and relays input until the
// connection ends; it returns how it ended unless c.end recorded that.
func (s *Server) serve(ctx context.Context, c *conn, logger slog.Logger) (disconnect, Init, func(int, string)) {
	if s.cfg.InitTimeout > 0 {
		c.setReadDeadline(time.Now().Add(s.cfg.InitTimeout))
	}
	init, err := ReadInit(preInitReader{c})
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
	if init.Link != "" && !s.cfg.DisableLink {
		req.linkID, req.inputOffset = init.Link, init.InputOffset
	}
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
	var lk *linkInput
	if sa, ok := att.(*sessionAttachment); ok {
		lk = sa.link
	}
	return s.relayInput(ctx, c, att, opts.ReadOnly, lk, logger), init, disconnected
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
		v, loaded := s.sessions.Load(init.ID)
		if !loaded {
			// Sessions an upgrade handed over are all registered
			// before the server serves; one not found may still be
			// among them only while they are being restored.
			if !s.waitRestored() {
				return nil, disconnect{reason: DisconnectServerShutdown, detail: "server closed"}, ErrServerClosed
			}
			if readOnly {
				v, loaded = s.sessions.Load(init.ID)
				if !loaded {
					return nil, disconnect{reason: DisconnectStartFailed, detail: "read-only connection: no live session with this ID"}, ErrSessionNotFound
				}
			} else {
				v, loaded = s.sessions.LoadOrStore(init.ID, newSession(s, init.ID))
			}
		}
		sess := v.(*session)
		if !loaded {
			s.startSession(sess, init, backend, req.height, req.width, logger)
		}
		if sess.restoreNow != nil {
			// Handed over and perhaps not rebuilt yet: rather than
			// wait for its turn, rebuild it now.
			sess.restoreNow()
		}
		<-sess.ready
		if sess.err != nil {
			if readOnly {
				return nil, disconnect{reason: DisconnectStartFailed, detail: "read-only connection: no live session with this ID"}, ErrSessionNotFound
			}
			if xerrors.Is(sess.err, ErrServerClosed) {
				return nil, disconnect{reason: DisconnectServerShutdown, detail: "server closed"}, sess.err
			}
			if xerrors.Is(sess.err, errUpgrading) {
				return nil, disconnect{reason: DisconnectServerUpgrade, detail: "the server is upgrading; reconnect"}, sess.err
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
	// An upgrade waits for a session that is starting, and none starts
	// while it runs. (Not RLock: the upgrade waits for this connection's
	// handler while it holds the lock.)
	if !s.upgradeMu.TryRLock() {
		sess.err = errUpgrading
		s.sessions.CompareAndDelete(init.ID, sess)
		return
	}
	defer s.upgradeMu.RUnlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.err = ErrServerClosed
		s.sessions.CompareAndDelete(init.ID, sess)
		return
	}
	if s.upgrading != nil {
		s.mu.Unlock()
		sess.err = errUpgrading
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
