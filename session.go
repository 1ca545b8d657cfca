package reconnectingpty

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty/internal/link"
)

// SizePolicy decides the terminal size of a session that several writable
// connections share, when their sizes differ. It applies to backends with
// one terminal per session (buffered); screen gives every connection a
// display of its own, at its own size, whatever the policy. Read-only
// connections never count.
type SizePolicy string

// The size policies, as tmux's window-size option.
const (
	// SizeLatest is the size of the writable connection that attached or
	// resized most recently; when it leaves, the next most recent one's.
	// This is the default, and what deployed clients expect.
	SizeLatest SizePolicy = "latest"
	// SizeSmallest is the smallest height and the smallest width among the
	// writable connections, so that everything fits on every screen.
	SizeSmallest SizePolicy = "smallest"
	// SizeLargest is the largest height and the largest width among the
	// writable connections.
	SizeLargest SizePolicy = "largest"
)

func parseSizePolicy(p SizePolicy) error {
	switch p {
	case SizeLatest, SizeSmallest, SizeLargest:
		return nil
	}
	return xerrors.Errorf("unknown size policy %q: want %q, %q or %q", p, SizeLatest, SizeSmallest, SizeLargest)
}

// termSize is a terminal size in cells.
type termSize struct{ height, width uint16 }

// session is the registry's entry for one ID: the backend plus what is the
// same for every backend: the inactivity timer, the attached connections
// and their sizes, and what Sessions reports.
type session struct {
	id      uuid.UUID
	srv     *Server
	logger  slog.Logger
	ready   chan struct{} // closed once rpty or err is set
	rpty    rpty
	err     error
	started time.Time
	backend BackendType
	command string
	// ownDisplays is set for a backend that gives every connection a
	// terminal of its own (screen): each writable connection's size goes
	// to its own attachment, and the size policy does not apply.
	ownDisplays bool
	// restoreNow, for a session an upgrade handed over, rebuilds it
	// unless that is done or under way, and returns once it is done; set
	// before the session is registered, nil for any other.
	restoreNow func()
	// gone is closed once the session has ended and its ID is free.
	gone chan struct{}
	// stopShutdown stops the server's shutdown from closing the session,
	// waiting for a close under way.
	stopShutdown func()

	lastInput atomic.Int64 // Unix nanoseconds; 0 until the first input

	// inputs is, per link ID, how much of that client's input the
	// program has been given (the link extension).
	inputs inputStreams

	mu      sync.Mutex
	members map[*member]struct{}
	seq     uint64      // orders attaches and resizes, for SizeLatest
	size    termSize    // the size the session's terminal was last given
	timer   *time.Timer // closes the idle session; see timedOut
	over    bool        // the backend ended: the timer does nothing
	// idleSince is when the timer was last set running.
	idleSince time.Time
	// frozen is set while an upgrade carries the session: the timer
	// does nothing and is not set again.
	frozen bool
}

// member is one attached (or attaching) connection.
type member struct {
	readOnly bool
	size     termSize   // the size the client asked for
	used     uint64     // s.seq at its latest attach or resize
	att      attachment // nil until the backend's attach returns
}

func newSession(s *Server, id uuid.UUID) *session {
	return &session{id: id, srv: s, ready: make(chan struct{}), gone: make(chan struct{}), members: map[*member]struct{}{}}
}

// newIdleTimer returns the inactivity timer, running unless sessions are
// kept forever (a negative Timeout), in which case it never fires. It
// needs no goroutine: it calls timedOut when it fires.
func (s *session) newIdleTimer() *time.Timer {
	return s.newIdleTimerFor(s.srv.cfg.Timeout)
}

// newIdleTimerFor is newIdleTimer firing after d rather than Timeout.
func (s *session) newIdleTimerFor(d time.Duration) *time.Timer {
	if s.srv.cfg.Timeout < 0 {
		t := time.AfterFunc(time.Hour, s.timedOut)
		t.Stop()
		return t
	}
	s.idleSince = time.Now().Add(d - s.srv.cfg.Timeout)
	return time.AfterFunc(d, s.timedOut)
}

// attach joins c. The connection counts as attached, stopping the
// inactivity timer, from before the backend's attach, which may take a
// while (a screen client must draw), and without holding s.mu meanwhile.
//
// The backend attaches at the size the session should have with c in it,
// and that size is applied once more after the attach, under s.mu: a
// resize from another connection may have raced the backend's own.
func (s *session) attach(c *conn, req attachRequest, readOnly bool) (attachment, error) {
	m := &member{readOnly: readOnly, size: termSize{req.height, req.width}}
	s.mu.Lock()
	if limit := s.srv.cfg.MaxConnectionsPerSession; over(len(s.members), limit) {
		s.mu.Unlock()
		return nil, xerrors.Errorf("%w: MaxConnectionsPerSession: %d connections are attached to the session already", errLimit, limit)
	}
	s.members[m] = struct{}{}
	s.timer.Stop()
	if !readOnly {
		s.seq++
		m.used = s.seq
	}
	start := s.size
	if !readOnly {
		if s.ownDisplays {
			start = m.size
		} else if t, ok := s.target(); ok {
			start = t
		}
	}
	s.mu.Unlock()

	req.height, req.width = start.height, start.width
	var lk *linkInput
	if req.linkID != "" {
		// The frame goes first, so that a client knows from the first
		// byte whether the server has the extension.
		lk = &linkInput{id: req.linkID, st: s.inputs.get(req.linkID, req.inputOffset), next: req.inputOffset}
		req.first = link.AppendFrame(nil, lk.id, link.Frame{In: lk.taken()})
	}
	att, err := s.rpty.attach(c, req)
	if err != nil {
		s.leave(m)
		return nil, err
	}
	s.mu.Lock()
	m.att = att
	if s.ownDisplays {
		if !readOnly {
			s.size = m.size
		}
	} else {
		s.applyLocked(att, true)
	}
	s.mu.Unlock()
	return &sessionAttachment{s: s, m: m, att: att, link: lk}, nil
}

// target is the size the policy gives the writable members; ok is false
// when there are none. s.mu is held.
func (s *session) target() (termSize, bool) {
	var t termSize
	var latest uint64
	ok := false
	for m := range s.members {
		if m.readOnly {
			continue
		}
		switch s.srv.cfg.SizePolicy {
		case SizeSmallest:
			if !ok {
				t = m.size
			}
			t.height, t.width = min(t.height, m.size.height), min(t.width, m.size.width)
		case SizeLargest:
			t.height, t.width = max(t.height, m.size.height), max(t.width, m.size.width)
		default:
			if m.used >= latest {
				t, latest = m.size, m.used
			}
		}
		ok = true
	}
	return t, ok
}

// applyLocked gives the session's terminal the policy's size, through via
// or else any attached member (on a shared terminal every attachment's
// resize sets the same size). With force it resizes even when the size
// looks unchanged, to undo a racing resize. s.mu is held.
func (s *session) applyLocked(via attachment, force bool) {
	t, ok := s.target()
	if !ok || (t == s.size && !force) {
		return
	}
	if via == nil {
		for m := range s.members {
			if m.att != nil {
				via = m.att
				break
			}
		}
	}
	if via == nil {
		return
	}
	s.size = t
	if err := via.resize(t.height, t.width); err != nil {
		s.logger.Debug(context.Background(), "resize reconnecting pty", slog.Error(err))
	}
}

// resize records a writable member's new size and applies the policy.
func (s *session) resize(m *member, height, width uint16) error {
	if m.readOnly {
		return xerrors.New("resize from a read-only connection")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	m.used = s.seq
	m.size = termSize{height, width}
	if s.ownDisplays {
		s.size = m.size
		return m.att.resize(height, width)
	}
	s.applyLocked(m.att, false)
	return nil
}

// leave removes a member that detached or failed to attach: the size is
// recomputed without it, and the inactivity timer starts when it was the
// last one.
func (s *session) leave(m *member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.members, m)
	if len(s.members) == 0 && s.srv.cfg.Timeout >= 0 && !s.over && !s.frozen {
		s.timer.Reset(s.srv.cfg.Timeout)
		s.idleSince = time.Now()
	}
	if !m.readOnly && !s.ownDisplays {
		s.applyLocked(nil, false)
	}
}

// freeze stops the inactivity timer while an upgrade carries the session.
func (s *session) freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
	s.timer.Stop()
}

// thaw undoes freeze: the timer runs on for what was left of it.
func (s *session) thaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = false
	if len(s.members) == 0 && s.srv.cfg.Timeout >= 0 && !s.over {
		s.timer.Reset(max(0, time.Until(s.idleSince.Add(s.srv.cfg.Timeout))))
	}
}

// state is what the new image needs of the session itself; the backend
// adds its own. The session is frozen.
func (s *session) state(now time.Time) sessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := sessionState{
		ID: s.id, Backend: s.backend, Command: s.command,
		Started: s.started, LastInput: unixNanoTime(s.lastInput.Load()),
		Height: s.size.height, Width: s.size.width,
		Inputs: s.inputs.taken(),
	}
	if s.srv.cfg.Timeout >= 0 {
		if len(s.members) > 0 {
			st.IdleDeadline = now.Add(s.srv.cfg.Timeout)
		} else {
			st.IdleDeadline = s.idleSince.Add(s.srv.cfg.Timeout)
		}
	}
	return st
}

// close ends the session for d, as an operator or the server would.
func (s *session) close(d disconnect) { s.rpty.close(d) }

// timedOut closes the session if it is still idle when its timer fires.
// It holds s.mu throughout, so that once ended has set over, no run of it
// does anything.
func (s *session) timedOut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over || s.frozen || len(s.members) > 0 {
		return
	}
	s.logger.Info(context.Background(), "reconnecting pty session timed out", slog.F("timeout", s.srv.cfg.Timeout.String()))
	s.close(disconnect{reason: DisconnectSessionTimeout, detail: "no connection for " + s.srv.cfg.Timeout.String()})
}

// ended is called by the backend, last, once it is over: the session is
// unregistered, counted out, and its ID is free when gone is closed. The
// session needs no goroutine of its own: the timer and the server's
// shutdown close the backend from callbacks.
func (s *session) ended() {
	<-s.ready // the backend can end before startSession has returned
	defer s.srv.wg.Done()
	s.mu.Lock()
	s.over = true
	s.timer.Stop()
	s.mu.Unlock()
	s.stopShutdown()
	s.srv.sessionGone()
	s.srv.sessions.CompareAndDelete(s.id, s)
	s.srv.metrics.sessionEnded(s.backend, time.Since(s.started))
	s.logger.Info(context.Background(), "reconnecting pty session ended", slog.F("duration", time.Since(s.started).String()))
	close(s.gone)
}

// sessionAttachment is a connection's handle on its session: input is
// timed for Sessions, resizes go through the size policy, and the session
// learns when the connection leaves.
type sessionAttachment struct {
	s    *session
	m    *member
	att  attachment
	link *linkInput // the link extension's input stream, or nil
	once sync.Once
}

func (a *sessionAttachment) write(p []byte) (int, error) {
	// The relay never writes for a read-only connection; this is the
	// second lock on that door.
	if a.m.readOnly {
		return 0, xerrors.New("input from a read-only connection")
	}
	a.s.lastInput.Store(time.Now().UnixNano())
	return a.att.write(p)
}

func (a *sessionAttachment) resize(height, width uint16) error {
	return a.s.resize(a.m, height, width)
}

func (a *sessionAttachment) control(frame []byte) { a.att.control(frame) }

func (a *sessionAttachment) detach() {
	a.once.Do(func() {
		a.att.detach()
		a.s.leave(a.m)
	})
}
