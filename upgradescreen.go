package reconnectingpty

import (
	"context"
	"os"
	"os/exec"

	"cdr.dev/slog/v3"
	"golang.org/x/xerrors"
)

// This file carries screen sessions across an upgrade. The GNU screen
// daemon is a process of its own, a child of this one (started on the
// process starter's thread, so its parent-death signal survives the exec
// as the PTY sessions' does); the program runs in its window. What the
// server holds of a session is the daemon's PID, the gate (a FIFO the
// wrapper may still be waiting on, which must keep a writer open across
// the exec or the wrapper reads EOF and exits) and files in the server's
// screen directory (its sockets, the wrapper's PID and exit status), which
// stay where they are: the new image adopts the directory. Its clients
// (screen -x on a PTY per connection) end with their connections, before
// the state is written.

// screenState is a screen session as an upgrade hands it over; the daemon's
// PID is sessionState.PID and the gate's descriptor sessionState.PTY.
type screenState struct {
	// Path is the screen binary; Dir the server's screen directory,
	// which the new image adopts, and Next its counter of session names.
	Path, Dir string
	Next      uint64
	// RC, Sock, SockDir, ExitFile and PidFile are the session's as
	// screenSession has them; Files the per-session files removed at
	// its end; Env the environment its clients and commands run with.
	RC, Sock, SockDir, ExitFile, PidFile string
	Files                                []string
	Env                                  []string
	// Released is set once the first client opened the gate.
	Released bool
}

// screenCarry takes a screen session's state for an upgrade and makes its
// gate inheritable; ended is set if the daemon is gone (nothing to carry).
// Every connection is closed by now, so it has no attachment.
func (s *screenSession) screenCarry() (st *screenState, gateFD int, ended bool, err error) {
	s.mu.Lock()
	ending := s.ending
	s.mu.Unlock()
	select {
	case <-s.daemonDone:
		ending = true
	case <-s.closeReq:
		// Asked to close: it is ending; the new image would only end it.
		ending = true
	default:
	}
	if ending {
		return nil, -1, true, nil
	}
	s.attachMu.Lock()
	released := s.released
	s.attachMu.Unlock()
	fd, err := setInheritable(s.gate, true)
	if err != nil {
		return nil, -1, false, xerrors.Errorf("screen session's gate: %w", err)
	}
	h := s.srv.screen
	h.mu.Lock()
	next := h.next
	h.mu.Unlock()
	return &screenState{
		Path: s.path, Dir: s.dir, Next: next,
		RC: s.rc, Sock: s.sock, SockDir: s.sockDir, ExitFile: s.exitFile, PidFile: s.pidFile,
		Files: s.files, Env: s.env, Released: released,
	}, fd, false, nil
}

// uncarry undoes screenCarry after a failed upgrade.
func (s *screenSession) uncarry() { _, _ = setInheritable(s.gate, false) }

// adopt makes dir, handed over by an upgrade, the host's directory, and
// keeps its session names unique.
func (h *screenHost) adopt(dir string, next uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dir == "" {
		h.dir = dir
	}
	h.next = max(h.next, next)
}

// restoreScreen takes a handed-over screen session back: its daemon, still
// a child of this process, is waited for as one this image started.
func (h *screenHost) restoreScreen(st *screenState, pid int, gate *os.File, logger slog.Logger, onDone func()) (*screenSession, error) {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, xerrors.Errorf("screen daemon %d: %w", pid, err)
	}
	h.adopt(st.Dir, st.Next)
	s := &screenSession{
		srv:        h.srv,
		logger:     logger.With(slog.F("backend", string(BackendScreen)), slog.F("pid", pid)),
		path:       st.Path,
		dir:        st.Dir,
		rc:         st.RC,
		sock:       st.Sock,
		env:        st.Env,
		files:      st.Files,
		sockDir:    st.SockDir,
		exitFile:   st.ExitFile,
		pidFile:    st.PidFile,
		gate:       gate,
		daemon:     &exec.Cmd{Path: st.Path, Process: proc},
		daemonDone: make(chan struct{}),
		released:   st.Released,
		atts:       map[*screenAttachment]struct{}{},
		closeReq:   make(chan struct{}),
		doneCh:     make(chan struct{}),
		onDone:     onDone,
	}
	go func() {
		defer close(s.daemonDone)
		awaitExit(pid)
		_, _ = proc.Wait()
	}()
	go s.run()
	s.logger.Debug(context.Background(), "screen session restored", slog.F("screen_session", st.Sock))
	return s, nil
}
