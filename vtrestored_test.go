package reconnectingpty

import (
	"bytes"
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/vt"
)

// formatOneState is g's terminal as format 1 (the previous release)
// carried it: as a snapshot.
func formatOneState(g *vtGreeting) *vtState {
	g.claim()
	defer g.release()
	rows, cols := g.term.Size()
	return &vtState{Snapshot: g.term.AppendSnapshot(nil), Height: uint16(rows), Width: uint16(cols), Parsed: g.parsed, Answered: g.answered}
}

// snapshotOf draws the terminal a state carries.
func snapshotOf(t *testing.T, st *vtState) []byte {
	t.Helper()
	term, err := vt.DecodeState(st.Term)
	if err != nil {
		t.Fatal(err)
	}
	return term.AppendSnapshot(nil)
}

// TestResumingARestoredTerminalNeedsNoParse pins that a client resuming a
// vt session handed over as a snapshot (format 1) that had no output
// since (the answered count, the attach, a resize to the same size) does
// not wait for its snapshot to be parsed, and that the answering the
// attach asked for is applied before the terminal parses anything after.
func TestResumingARestoredTerminalNeedsNoParse(t *testing.T) {
	g := newVTGreeting(24, 80, 100)
	g.output([]byte("hello\r\n\x1b[c")) // a query, answered: nobody attached
	g.afterOutput(false)
	st := formatOneState(g)
	g.finish()
	if st.Answered == 0 {
		t.Fatal("the query was not answered before the handover")
	}

	var answers []byte
	r, parse, err := restoreVTGreeting(st, 100)
	if err != nil || !parse {
		t.Fatalf("restore a snapshot: %v (to parse: %v)", err, parse)
	}
	defer r.finish()
	r.answerWith(func(p []byte) { answers = append(answers, p...) })
	if got := r.answeredThrough(); got != st.Answered {
		t.Fatalf("answeredThrough %d, want the handed-over %d", got, st.Answered)
	}
	r.resized(24, 80)
	r.attached(1) // a client answers from now on
	r.mu.Lock()
	waiting := len(r.pending)
	r.mu.Unlock()
	if waiting != len(st.Snapshot) {
		t.Fatalf("%d bytes wait to be parsed, want the snapshot's %d: something parsed it", waiting, len(st.Snapshot))
	}

	// Output after the attach: the client answers its query, not the
	// emulator.
	r.output([]byte("\x1b[c"))
	r.afterOutput(false)
	if len(answers) > 0 {
		t.Fatalf("the emulator answered %q while a client was attached", answers)
	}
	if got := snapshotOf(t, r.state(nil)); !bytes.Contains(got, []byte("hello")) {
		t.Fatalf("restored screen lost its text: %q", got)
	}
	// A resize to another size is a change, parsed as any other.
	r.resized(30, 100)
	if got := r.state(nil); got.Height != 30 || got.Width != 100 {
		t.Fatalf("resize lost: %+v", got)
	}
}
