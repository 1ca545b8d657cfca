package reconnectingpty

import (
	"bytes"

	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty/internal/vt"
)

// This file is a vt terminal as an upgrade hands it over and the new
// image takes it back: decoded from its state (format 2), it is the
// terminal at once; from a snapshot (format 1, a previous release's), the
// snapshot waits to be parsed, and a client that resumes before then
// (mode=delta) does not have to wait for that.

// restoredTerm is what a greeting knows of a handed-over terminal while
// its snapshot may still wait unparsed.
type restoredTerm struct {
	// quiet is set while the terminal has had no output since but its
	// snapshot: then what a resuming client needs (the answered count,
	// the size) is known without a parse.
	quiet         bool
	height, width uint16
	// answerSet is set when attached asked for answering to change
	// meanwhile (to answerQ), which the next parse applies first.
	answerSet, answerQ bool
}

// applyAnswering applies the answering asked for while quiet. The caller
// has the terminal and holds the greeting's mu.
func (r *restoredTerm) applyAnswering(term *vt.Terminal) {
	if r.answerSet {
		r.answerSet = false
		term.SetAnswerQueries(r.answerQ)
	}
}

// restoreVTGreeting is the greeting of a handed-over vt session: the
// terminal decoded from its state, and it needs no parse (parse reports
// false). A state that does not decode (it passed the checksum: a bug) is
// an error, and the greeting a blank terminal of the size, so that the
// session goes on.
//
// From a format 1 state it is a fresh emulator that the old one's
// snapshot brings to the same state. The
// snapshot waits as output not yet parsed, so that restoring costs no
// parsing: whoever next takes the terminal parses it first (see claim),
// or parse does, in the background. The snapshot is copied: st's may be
// the handed-over state's memory, which goes once every session is back.
func restoreVTGreeting(st *vtState, scrollback int) (*vtGreeting, bool, error) {
	g := newVTGreeting(st.Height, st.Width, scrollback)
	if len(st.Term) > 0 {
		g.parsed, g.answered = st.Parsed, st.Answered
		term, err := vt.DecodeState(st.Term)
		if err != nil {
			return g, false, xerrors.Errorf("restore the vt terminal: %w", err)
		}
		if rows, cols := term.Size(); rows != int(st.Height) || cols != int(st.Width) {
			return g, false, xerrors.Errorf("restore the vt terminal: %dx%d, the session says %dx%d", rows, cols, st.Height, st.Width)
		}
		if term.ScrollbackLines() == scrollback {
			g.term = term
			return g, false, nil
		}
		// Another scrollback configured: the snapshot redraws the
		// terminal into one of the new size, as for format 1.
		g.pending = term.AppendSnapshot(nil)
		g.parsed -= uint64(len(g.pending))
		g.snapshotLen = len(g.pending)
		g.restored = restoredTerm{quiet: true, height: st.Height, width: st.Width}
		return g, true, nil
	}
	// A snapshot holds no query, so the emulator answers none of it.
	g.pending = bytes.Clone(st.Snapshot)
	g.parsed = st.Parsed - uint64(len(st.Snapshot))
	g.answered = st.Answered
	g.snapshotLen = len(st.Snapshot)
	g.restored = restoredTerm{quiet: true, height: st.Height, width: st.Width}
	return g, true, nil
}

// answeredIfQuiet is answeredThrough without a parse, for a restored
// terminal that has had no output but its snapshot: parsing a snapshot
// answers nothing, so the count is the one handed over.
func (g *vtGreeting) answeredIfQuiet() (uint64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.restored.quiet {
		return 0, false
	}
	// Written only when a parse answers a query, which a snapshot has
	// none of: while quiet, nobody writes it.
	return g.answered, true
}

// deferAnswering records whether the emulator is to answer queries, for a
// restored terminal that has had no output but its snapshot, without
// parsing it: the setting applies before the next parse, and the snapshot
// holds no query it would change. It reports false (nothing recorded) for
// any other terminal.
func (g *vtGreeting) deferAnswering(on bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.restored.quiet {
		return false
	}
	g.restored.answerSet, g.restored.answerQ = true, on
	return true
}

// sameSizeIfQuiet reports whether a resize to height x width changes
// nothing on a restored terminal that has had no output but its snapshot,
// so that it needs no parse; a resize that changes it ends the quiet.
func (g *vtGreeting) sameSizeIfQuiet(height, width uint16) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &g.restored
	if r.quiet && (height != r.height || width != r.width) {
		// The resize changes the terminal: from now on it is parsed
		// as any other's.
		r.quiet = false
	}
	return r.quiet
}
