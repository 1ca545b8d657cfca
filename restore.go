package reconnectingpty

import (
	"context"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// Handover is what an upgrade handed to this program image: the sessions
// (for Server.Restore) and the listeners (by name). Get it with Inherited.
type Handover struct {
	// Written is when the previous image wrote the state.
	Written time.Time
	// execAt is when the old image executed this one, inherited when
	// Inherited began, read how long it took to read and check the state.
	execAt, inherited time.Time
	read              time.Duration

	mu        sync.Mutex
	listeners map[string]net.Listener
	sessions  []sessionState
	ptys      map[int]*os.File // by descriptor number
	restored  bool
	// conns are the connections the previous image had accepted and not
	// served (see upgradeconns.go): Restore serves them, or Close closes
	// them.
	conns []net.Conn
	// mapped is the state's memory, which the sessions' output and
	// snapshots are slices of: Restore takes it (and unmaps it once every
	// session has its copy), or Close unmaps it.
	mapped []byte
}

// Inherited returns what an upgrade (Server.Upgrade) handed to this
// program image, or nil if the process was not started by one. Call it
// before NewServer and before starting any child process: from here on
// the handed descriptors are close-on-exec again.
//
// A state it cannot read (a format this release does not know, a
// corrupt or truncated state, one that does not match the descriptors
// and processes it names) is refused before any session is taken: then
// the sessions it names are ended (each terminal session hung up and
// killed, its process reaped) rather than left running where nobody can
// reach them, and Inherited returns an error saying so together with a
// Handover that has the listeners and no session, so that the program
// can serve on.
func Inherited() (*Handover, error) {
	began := time.Now()
	v, ok := os.LookupEnv(HandoverEnv)
	if !ok {
		return nil, nil
	}
	// Children (the sessions' processes included) must not see it.
	_ = os.Unsetenv(HandoverEnv)
	env, err := parseHandoverEnv(v)
	if err != nil {
		return nil, xerrors.Errorf("inherited reconnecting pty sessions: %w", err)
	}
	unix.CloseOnExec(env.state)
	for _, s := range env.sessions {
		unix.CloseOnExec(s.pty)
	}
	h := &Handover{listeners: map[string]net.Listener{}, ptys: map[int]*os.File{}}
	var lnErr error
	for name, fd := range env.listeners {
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), name)
		l, err := net.FileListener(f)
		_ = f.Close()
		if err != nil {
			lnErr = xerrors.Errorf("inherited listener %q: %w", name, err)
			continue
		}
		h.listeners[name] = l
	}
	for _, fd := range env.conns {
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "carried connection")
		nc, err := net.FileConn(f)
		_ = f.Close()
		if err == nil {
			h.conns = append(h.conns, nc)
		}
	}
	st, mapped, err := readHandover(env)
	if err != nil {
		n := endRefused(env.sessions)
		return h, xerrors.Errorf("refused the reconnecting pty state handed over by an upgrade: %w; its %d sessions were ended", err, n)
	}
	h.Written, h.sessions, h.mapped = st.Written, st.Sessions, mapped
	for _, s := range env.sessions {
		h.ptys[s.pty] = os.NewFile(uintptr(s.pty), "/dev/ptmx")
	}
	h.execAt, h.inherited, h.read = env.execAt, began, time.Since(began)
	return h, lnErr
}

// readHandover maps the state (its pages are the memory file's: nothing
// is copied) and checks it against the variable and the process's
// children. The sessions' output and snapshots are slices of the mapping,
// which the caller unmaps once it no longer needs them.
func readHandover(env handoverEnv) (st *handoverState, mapped []byte, err error) {
	f := os.NewFile(uintptr(env.state), "reconnectingpty-handover")
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, xerrors.Errorf("read handover state: %w", err)
	}
	size := fi.Size()
	if size < int64(handoverHeaderLen) || size > maxHandoverSize {
		return nil, nil, xerrors.Errorf("read handover state: %d bytes is not a state", size)
	}
	mapped, err = unix.Mmap(env.state, 0, int(size), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, xerrors.Errorf("map handover state (%d bytes): %w", size, err)
	}
	defer func() {
		if err != nil {
			_ = unix.Munmap(mapped)
			mapped = nil
		}
	}()
	st, err = decodeHandoverBytes(mapped)
	if err != nil {
		return nil, nil, err
	}
	if len(st.Sessions) != len(env.sessions) {
		return nil, nil, xerrors.Errorf("the state has %d sessions, %s names %d", len(st.Sessions), HandoverEnv, len(env.sessions))
	}
	for i, s := range st.Sessions {
		e := env.sessions[i]
		if s.PID != e.pid || s.PTY != e.pty {
			return nil, nil, xerrors.Errorf("session %s: the state says process %d on descriptor %d, %s says %d on %d", s.ID, s.PID, s.PTY, HandoverEnv, e.pid, e.pty)
		}
		if !isChild(s.PID) {
			return nil, nil, xerrors.Errorf("session %s: process %d is not a child of this process", s.ID, s.PID)
		}
		if s.Backend != BackendBuffered && s.Backend != BackendVT && s.Backend != BackendScreen {
			return nil, nil, xerrors.Errorf("session %s: backend %q cannot be handed over", s.ID, s.Backend)
		}
		if s.Backend == BackendScreen && s.Screen == nil {
			return nil, nil, xerrors.Errorf("session %s: a screen session without its state", s.ID)
		}
		if s.Backend == BackendVT && s.VT == nil {
			return nil, nil, xerrors.Errorf("session %s: a vt session without its terminal", s.ID)
		}
	}
	return st, mapped, nil
}

// isChild reports whether pid is an unreaped child of this process.
func isChild(pid int) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err == nil
}

// endRefused ends the sessions of a refused state: each terminal is hung
// up, everything in its terminal session killed and the process reaped.
// It returns how many there were.
func endRefused(sessions []envSession) int {
	procs := newProcTable()
	for _, s := range sessions {
		_ = unix.Close(s.pty) // hangs the terminal up
		killAndReap(procs, s.pid)
	}
	return len(sessions)
}

// killAndReap kills everything in the terminal session pid leads and
// reaps pid, if it is a child of this process.
func killAndReap(procs *procTable, pid int) {
	if !isChild(pid) {
		return
	}
	procs.killSession(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, 0, nil)
}

// Listener returns the listener handed over under name, once: the caller
// owns it. ok is false if there is none, or h is nil (no handover).
func (h *Handover) Listener(name string) (l net.Listener, ok bool) {
	if h == nil {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok = h.listeners[name]
	delete(h.listeners, name)
	return l, ok
}

// Close closes the listeners nobody took and, unless a server restored
// them, ends the sessions (as a refused state's are ended). A nil h has
// nothing to close.
func (h *Handover) Close() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, l := range h.listeners {
		_ = l.Close()
		delete(h.listeners, name)
	}
	if !h.restored {
		h.restored = true
		procs := newProcTable()
		for _, s := range h.sessions {
			_ = h.ptys[s.PTY].Close()
			killAndReap(procs, s.PID)
		}
	}
	if h.mapped != nil {
		_ = unix.Munmap(h.mapped)
		h.mapped = nil
	}
	for _, nc := range h.conns {
		_ = nc.Close()
	}
	h.conns = nil
	return nil
}

// Restore takes back the sessions an upgrade handed over: the same IDs,
// commands, backends, processes, sizes, output (offsets included, so that
// a resuming client gets the bytes it missed), vt terminals, screen
// sessions and inactivity deadlines. Connections were not carried:
// clients reconnect. Call it before Serve; it returns at once, having
// registered every session, and rebuilds them in the background, so that
// the server serves meanwhile: a connection to a session not rebuilt yet
// rebuilds it first, and one naming an ID the handover does not have
// waits until every session is back (so that no session is started
// twice). It can be called once per Handover, and only on a server that
// has no session yet.
func (s *Server) Restore(ctx context.Context, h *Handover) error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.restored {
		return xerrors.New("restore: the handover's sessions were taken already")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return xerrors.Errorf("restore: %w", ErrServerClosed)
	}
	if s.starter != nil || s.live > 0 {
		s.mu.Unlock()
		return xerrors.New("restore: the server has started sessions already")
	}
	// The handed descriptors are this server's now, not ones the process
	// was started with.
	s.inherited = slices.DeleteFunc(s.inherited, func(fd int) bool { _, ok := h.ptys[fd]; return ok })
	// Later children must be children of the thread that the restored
	// ones are children of: the main thread (see newProcStarter).
	s.starter = newProcStarter(s.inherited, len(h.sessions) > 0)
	onMain := s.starter.onMain
	s.mu.Unlock()
	h.restored = true
	if len(h.sessions) > 0 && !onMain {
		s.logger.Warn(ctx, "reconnecting pty restore: could not run the process starter on the main thread; a further upgrade is refused while restored sessions live")
	}
	s.restoreInBackground(ctx, h)
	// After the sessions are registered: their inits find them.
	conns := h.conns
	h.conns = nil
	s.serveCarried(ctx, conns)
	return nil
}

// restoreInBackground registers every handed-over session at once and
// rebuilds them on every CPU in the background, so that the server serves
// from the moment Restore returns: an attach to a session not rebuilt yet
// rebuilds it itself (or waits for the worker doing so), and an init
// naming an ID the handover does not have waits until every session is
// back (see waitRestored). Until then an upgrade waits too (the restore
// holds upgradeMu). h.mu is held.
func (s *Server) restoreInBackground(ctx context.Context, h *Handover) {
	began := time.Now()
	mapped := h.mapped
	h.mapped = nil
	if len(h.sessions) == 0 {
		if mapped != nil {
			_ = unix.Munmap(mapped)
		}
		s.logger.Info(ctx, "reconnecting pty sessions restored",
			slog.F("sessions", 0),
			slog.F("write_to_exec", h.execAt.Sub(h.Written).String()),
			slog.F("exec", h.inherited.Sub(h.execAt).String()),
			slog.F("read", h.read.String()),
			slog.F("register", time.Since(began).String()),
			slog.F("restore", time.Since(began).String()))
		return
	}
	sessions := make([]*session, len(h.sessions))
	greetings := make([]*vtGreeting, len(h.sessions))
	for i, st := range h.sessions {
		sess := newSession(s, st.ID)
		ptmx := h.ptys[st.PTY]
		var once sync.Once
		sess.restoreNow = func() {
			once.Do(func() { greetings[i] = s.restoreSession(sess, st, ptmx) })
		}
		sessions[i] = sess
	}
	done := make(chan struct{})
	s.upgradeMu.RLock()
	s.mu.Lock()
	s.restoring = done
	s.mu.Unlock()
	for _, sess := range sessions {
		s.sessions.Store(sess.id, sess)
	}
	registered := time.Since(began)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// On all CPUs but one, which is left to the clients
		// reconnecting meanwhile (their attaches rebuild their own
		// sessions first).
		inParallel(len(sessions), runtime.GOMAXPROCS(0)-1, func(i int) { sessions[i].restoreNow() })
		// Every session has its copies: the state's memory can go.
		if mapped != nil {
			_ = unix.Munmap(mapped)
		}
		s.upgradeMu.RUnlock()
		close(done)
		s.logger.Info(ctx, "reconnecting pty sessions restored",
			slog.F("sessions", len(sessions)),
			slog.F("write_to_exec", h.execAt.Sub(h.Written).String()),
			slog.F("exec", h.inherited.Sub(h.execAt).String()),
			slog.F("read", h.read.String()),
			slog.F("register", registered.String()),
			slog.F("restore", time.Since(began).String()))
		var parse []*vtGreeting
		for _, g := range greetings {
			if g != nil {
				parse = append(parse, g)
			}
		}
		// Each session's restoreNow keeps greetings: it must not keep
		// the terminals of sessions that end.
		clear(greetings)
		s.parseRestored(parse)
	}()
}

// waitRestored waits, for an init naming an ID that has no session, until
// every handed-over session is back, so that a session is never started
// twice. It reports false if the server closed first.
func (s *Server) waitRestored() bool {
	s.mu.Lock()
	done := s.restoring
	s.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// parseRestored has the restored vt terminals parse their snapshots in the
// background, so that the server serves at once and an attach seldom has
// to wait for a parse. One goroutine: the other CPUs are left to the
// clients reconnecting meanwhile, whose resume needs no parse.
func (s *Server) parseRestored(gs []*vtGreeting) {
	if len(gs) == 0 {
		return
	}
	began := time.Now()
	for _, g := range gs {
		if s.ctx.Err() != nil {
			return
		}
		g.parse()
	}
	s.logger.Info(s.ctx, "reconnecting pty restored terminals parsed",
		slog.F("terminals", len(gs)), slog.F("took", time.Since(began).String()))
}

// restoreSession takes one session back and starts serving it; it returns
// its vt greeting, if it has one.
func (s *Server) restoreSession(sess *session, st sessionState, ptmx *os.File) *vtGreeting {
	logger := s.logger.With(slog.F("session_id", s.logID(st.ID)))
	sess.logger = logger
	s.mu.Lock()
	s.live++
	s.restored++
	s.wg.Add(1) // done by sess.ended
	s.mu.Unlock()
	onDone := func() {
		s.mu.Lock()
		s.restored--
		s.mu.Unlock()
		sess.ended()
	}
	if st.Backend == BackendScreen {
		// (FindProcess does not fail for a PID on Linux: the check that
		// the daemon is a child was made when the state was read.)
		sc, _ := s.screen.restoreScreen(st.Screen, st.PID, ptmx, logger, onDone)
		if !st.LastOutput.IsZero() {
			sc.last.Store(st.LastOutput.UnixNano())
		}
		sess.ownDisplays = true
		s.restoreCommon(sess, st, sc)
		return nil
	}
	// FindProcess opens a pidfd for a child that is still ours: waiting
	// for it works as for one this image started.
	proc, _ := os.FindProcess(st.PID)
	var g greeting = bufferedGreeting{size: s.cfg.BufferSize}
	var vg *vtGreeting
	if st.Backend == BackendVT {
		var parse bool
		var err error
		vg, parse, err = restoreVTGreeting(st.VT, s.cfg.ScrollbackLines)
		if err != nil {
			logger.Error(s.ctx, "reconnecting pty restore: the terminal starts blank", slog.Error(err))
		}
		g = vg
		if !parse {
			vg = nil // nothing for parseRestored
		}
	}
	ps := newPTYSession(s, st.Backend, g, ptmx, proc, logger, onDone)
	ps.reattached = make(chan struct{})
	ps.ring.restore(st.Ring.Total, st.Ring.Held)
	if !st.LastOutput.IsZero() {
		ps.last.Store(st.LastOutput.UnixNano())
	}
	// (The terminal was made at its size: no resize, which would parse
	// the snapshot now.)
	ps.startReading() // nobody is owed the first bytes
	s.restoreCommon(sess, st, ps)
	ps.start()
	logger.Debug(s.ctx, "reconnecting pty session restored", slog.F("backend", string(st.Backend)),
		slog.F("pid", st.PID), slog.F("height", st.Height), slog.F("width", st.Width), slog.F("output_offset", st.Ring.Total))
	if st.Closing {
		ps.close(disconnect{reason: st.CloseReason, detail: st.CloseDetail})
	}
	return vg
}

// restoreCommon gives a restored session what is the same for every
// backend, and makes it ready.
func (s *Server) restoreCommon(sess *session, st sessionState, r rpty) {
	sess.rpty = r
	sess.started = st.Started
	sess.backend = st.Backend
	sess.command = st.Command
	sess.size = termSize{st.Height, st.Width}
	if !st.LastInput.IsZero() {
		sess.lastInput.Store(st.LastInput.UnixNano())
	}
	sess.inputs.restore(st.Inputs)
	remaining := s.cfg.Timeout
	if !st.IdleDeadline.IsZero() {
		remaining = max(0, time.Until(st.IdleDeadline))
	}
	sess.mu.Lock()
	sess.timer = sess.newIdleTimerFor(remaining)
	sess.mu.Unlock()
	s.metrics.sessionStarted(sess.backend)
	sess.stopShutdown = afterFunc(s.ctx, func() {
		r.close(disconnect{reason: DisconnectServerShutdown, detail: "server closed"})
	})
	close(sess.ready)
}

// restore makes the ring hold held as the last of total bytes written.
func (r *replayRing) restore(total uint64, held []byte) {
	if len(held) > r.max {
		held = held[len(held)-r.max:]
	}
	r.write(held)
	r.total = total
}
