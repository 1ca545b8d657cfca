package reconnectingpty

import (
	"os/exec"

	"cdr.dev/slog/v3"

	"github.com/reconnectingpty/reconnectingpty/internal/vt"
)

// vtGreeting is the vt backend's greeting: every output byte and resize is
// fed, in order, to an in-process terminal emulator, and a joining
// connection is sent a snapshot of that terminal's state (screen,
// scrollback, alternate screen, cursor, modes, title, pen), drawn at the
// connection's size. The core calls it under its lock, so the snapshot
// plus the live output that follows is exact.
type vtGreeting struct {
	term *vt.Terminal
}

func newVTGreeting(height, width uint16, scrollback int) *vtGreeting {
	term := vt.New(int(height), int(width), vt.Options{Scrollback: scrollback})
	// Nobody is attached yet: a program that asks the terminal something
	// on start (DA, cursor position) gets the answer xterm would give
	// rather than waiting for a client that is not there.
	term.SetAnswerQueries(true)
	return &vtGreeting{term: term}
}

func (g *vtGreeting) output(p []byte) []byte {
	_, _ = g.term.Write(p)
	return g.term.AppendReplies(nil)
}

func (g *vtGreeting) resized(height, width uint16) { g.term.Resize(int(height), int(width)) }

// attached hands query answering to the clients while any is attached:
// their terminals answer, and two answers would confuse the program.
func (g *vtGreeting) attached(n int) { g.term.SetAnswerQueries(n == 0) }

func (g *vtGreeting) greet(dst []byte, _ *replayRing) []byte { return g.term.AppendSnapshot(dst) }

// exactRedraw: a snapshot is the exact state, so a client resuming from
// nothing gets it rather than the raw output since the start.
func (*vtGreeting) exactRedraw() {}

// title is the window title the program last set.
func (g *vtGreeting) title() string { return g.term.Title() }

// startVT starts a vt session: the command on a PTY of its own, the shared
// core's fan-out and resume ring, and a terminal emulator that greets every
// attaching connection with the program's current screen.
func startVT(s *Server, cmd *exec.Cmd, height, width uint16, logger slog.Logger, onDone func()) (*ptySession, error) {
	return startPTYSession(s, BackendVT, newVTGreeting(height, width, s.cfg.ScrollbackLines), cmd, height, width, logger, onDone)
}
