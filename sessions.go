package reconnectingpty

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// ErrSessionNotFound is returned by CloseSession when no live session has
// the ID.
var ErrSessionNotFound = xerrors.New("reconnecting pty session not found")

// SessionInfo describes one live session, as Sessions sees it.
type SessionInfo struct {
	// ID is the session's UUID, as its clients name it.
	ID uuid.UUID `json:"id"`
	// Backend is the backend that runs the session: buffered or screen.
	Backend BackendType `json:"backend"`
	// Command is the command line the session was created with; empty
	// for the login shell.
	Command string `json:"command"`
	// PID is the process the backend started: the command itself for
	// buffered, the screen daemon that runs it for screen.
	PID int `json:"pid"`
	// Started is when the session was created.
	Started time.Time `json:"started"`
	// LastOutput is when the process last wrote output, zero if never.
	// For screen it is when an attached connection was last sent output
	// (repaints included): screen keeps the program's own output to itself.
	LastOutput time.Time `json:"last_output,omitzero"`
	// LastInput is when a connection last sent input, zero if never.
	LastInput time.Time `json:"last_input,omitzero"`
	// Connections is the number of attached connections, ReadOnly how
	// many of them are read-only.
	Connections int `json:"connections"`
	ReadOnly    int `json:"read_only"`
	// Height and Width are the terminal's current size: with screen, the
	// size of the writable connection that attached or resized last.
	Height uint16 `json:"height"`
	Width  uint16 `json:"width"`
	// Title is the window title the program set, where the backend keeps
	// track of it; empty otherwise.
	Title string `json:"title"`
}

// Optional backend capabilities, found by type assertion, so that each
// backend implements only what it knows.
type (
	// pider reports the PID of the process the backend started.
	pider interface{ pid() int }
	// outputTimer reports when the process last wrote output; backends
	// embed outputClock for it.
	outputTimer interface{ lastOutput() time.Time }
	// titler reports the window title the program last set.
	titler interface{ title() string }
)

// outputClock is the hook a backend updates whenever its process writes
// output, for SessionInfo.LastOutput: one atomic store per read, so the
// output path pays next to nothing. Embed it; the zero value is ready.
type outputClock struct{ last atomic.Int64 }

// tick records that output arrived now.
func (o *outputClock) tick() { o.last.Store(time.Now().UnixNano()) }

func (o *outputClock) lastOutput() time.Time { return unixNanoTime(o.last.Load()) }

func unixNanoTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// backendName names the backend that r is; a new backend adds its case.
func backendName(r rpty) BackendType {
	switch r := r.(type) {
	case *ptySession:
		return BackendType(r.backend)
	case *screenSession:
		return BackendScreen
	}
	return BackendAuto
}

// Sessions returns a snapshot of the live sessions, oldest first. It is
// safe to call at any time, concurrently with everything else.
func (s *Server) Sessions() []SessionInfo {
	var out []SessionInfo
	s.sessions.Range(func(_, v any) bool {
		sess := v.(*session)
		if sess.restoreNow != nil {
			// Handed over by an upgrade: live, and perhaps not
			// rebuilt yet.
			sess.restoreNow()
		}
		if info, ok := sess.info(); ok {
			out = append(out, info)
		}
		return true
	})
	slices.SortFunc(out, func(a, b SessionInfo) int { return a.Started.Compare(b.Started) })
	return out
}

// info describes the session; ok is false while it is starting or if it
// failed to.
func (s *session) info() (SessionInfo, bool) {
	select {
	case <-s.ready:
	default:
		return SessionInfo{}, false
	}
	if s.err != nil {
		return SessionInfo{}, false
	}
	info := SessionInfo{
		ID:        s.id,
		Backend:   s.backend,
		Command:   s.command,
		Started:   s.started,
		LastInput: unixNanoTime(s.lastInput.Load()),
	}
	if p, ok := s.rpty.(pider); ok {
		info.PID = p.pid()
	}
	if o, ok := s.rpty.(outputTimer); ok {
		info.LastOutput = o.lastOutput()
	}
	if t, ok := s.rpty.(titler); ok {
		info.Title = t.title()
	}
	s.mu.Lock()
	for m := range s.members {
		info.Connections++
		if m.readOnly {
			info.ReadOnly++
		}
	}
	info.Height, info.Width = s.size.height, s.size.width
	s.mu.Unlock()
	return info, true
}

// CloseSession ends the session with the given ID as an operator would:
// its process and everything it started is killed, every attached
// connection gets the remaining output and then EOF, and each close is
// attributed to DisconnectSessionClosed. It returns once the session is
// gone and its ID free (a connection naming it then starts a new
// session), ErrSessionNotFound if there is no such session, or ctx's error
// if ctx ends first; the session is closing all the same. It is safe to
// call concurrently with everything else.
func (s *Server) CloseSession(ctx context.Context, id uuid.UUID) error {
	v, ok := s.sessions.Load(id)
	if !ok {
		return xerrors.Errorf("close session %s: %w", id, ErrSessionNotFound)
	}
	sess := v.(*session)
	select {
	case <-sess.ready:
	case <-ctx.Done():
		return xerrors.Errorf("close session %s: %w", id, ctx.Err())
	}
	if sess.err != nil {
		return xerrors.Errorf("close session %s: %w", id, ErrSessionNotFound)
	}
	sess.logger.Info(ctx, "reconnecting pty session closed by request")
	sess.close(disconnect{reason: DisconnectSessionClosed, detail: "closed by CloseSession"})
	select {
	case <-sess.gone:
		return nil
	case <-ctx.Done():
		return xerrors.Errorf("close session %s: %w", id, ctx.Err())
	}
}
