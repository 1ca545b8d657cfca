package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/vt"
)

// predictRig runs a predictor against two model terminals: term gets
// every byte rpty writes (the user's terminal), ref only the program's
// output (what a client without prediction shows).
type predictRig struct {
	t         *testing.T
	p         *predictor
	term, ref *vt.Terminal
	rtt       time.Duration
	clock     time.Time
	// termLog and refLog are the bytes each was fed, for xterm.js.
	termLog, refLog [][]byte
}

func newPredictRig(t *testing.T, mode predictMode) *predictRig {
	r := &predictRig{t: t, term: vt.New(6, 40, vt.Options{}), ref: vt.New(6, 40, vt.Options{}),
		rtt: 150 * time.Millisecond, clock: time.Unix(1e9, 0)}
	r.p = newPredictor(mode, defaultPredictThreshold, 6, 40, func() time.Duration { return r.rtt })
	r.p.now = func() time.Time { return r.clock }
	return r
}

func (r *predictRig) program(s string) {
	r.toTerm(r.p.output([]byte(s)))
	_, _ = r.ref.Write([]byte(s))
	r.refLog = append(r.refLog, []byte(s))
}

func (r *predictRig) typeKeys(s string) { r.toTerm(r.p.typed([]byte(s))) }

func (r *predictRig) tick() { r.toTerm(r.p.tick()) }

func (r *predictRig) toTerm(b []byte) {
	_, _ = r.term.Write(b)
	if len(b) > 0 {
		r.termLog = append(r.termLog, b)
	}
}

// shownAt reports what the user's terminal shows at row y, column x and
// whether it is underlined while the program's screen has nothing there.
func (r *predictRig) shownAt(y, x int) (string, bool) {
	text, _ := r.term.Cell(y, x)
	pen := string(r.term.AppendCellPen(nil, y, x))
	return text, strings.Contains(pen, ";4")
}

// requireExact fails unless the user's terminal is cell for cell, pen and
// cursor, what the program drew.
func (r *predictRig) requireExact(when string) {
	r.t.Helper()
	rows, cols := r.ref.Size()
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			gt, gw := r.term.Cell(y, x)
			wt, ww := r.ref.Cell(y, x)
			gp, wp := string(r.term.AppendCellPen(nil, y, x)), string(r.ref.AppendCellPen(nil, y, x))
			if gt != wt || gw != ww || gp != wp {
				r.t.Fatalf("%s: cell %d,%d is %q (width %d, pen %q), program drew %q (width %d, pen %q)",
					when, y, x, gt, gw, gp, wt, ww, wp)
			}
		}
	}
	gy, gx := r.term.Cursor()
	wy, wx := r.ref.Cursor()
	if gy != wy || gx != wx {
		r.t.Fatalf("%s: cursor at %d,%d, program's at %d,%d", when, gy, gx, wy, wx)
	}
	if gp, wp := string(r.term.AppendPen(nil)), string(r.ref.AppendPen(nil)); gp != wp {
		r.t.Fatalf("%s: pen %q, program's %q", when, gp, wp)
	}
}

func TestPredictorShowsKeysOnceTheEpochIsConfirmed(t *testing.T) {
	r := newPredictRig(t, predictAuto)
	r.program("$ ")
	r.typeKeys("l")
	if got, _ := r.shownAt(0, 2); got != "" {
		t.Fatalf("first key of an epoch drawn before its echo: %q", got)
	}
	r.program("l")
	r.requireExact("after the first echo")
	r.typeKeys("s")
	r.typeKeys(" ")
	r.typeKeys("-")
	if got, ul := r.shownAt(0, 3); got != "s" || !ul {
		t.Fatalf("second key: cell shows %q (underlined %v), want an underlined s", got, ul)
	}
	if got, ul := r.shownAt(0, 5); got != "-" || !ul {
		t.Fatalf("fourth key: cell shows %q (underlined %v), want an underlined -", got, ul)
	}
	if y, x := r.term.Cursor(); y != 0 || x != 6 {
		t.Fatalf("cursor at %d,%d, want after the last guess (0,6)", y, x)
	}
	r.program("s")
	if got, ul := r.shownAt(0, 3); got != "s" || ul {
		t.Fatalf("confirmed key still marked: %q underlined %v", got, ul)
	}
	r.program(" -")
	r.requireExact("after every echo")
	r.typeKeys("\x7f")
	r.typeKeys("l")
	r.program("\b\x1b[Kl")
	r.requireExact("after backspace")
	r.typeKeys("\r")
	r.program("\r\nfile\r\n$ ")
	r.requireExact("after the command ran")
	if r.p.stats.wrong != 0 {
		t.Errorf("%d wrong guesses in an echoing shell", r.p.stats.wrong)
	}
}

func TestPredictorDrawsNothingWhereTheProgramDoesNotEcho(t *testing.T) {
	r := newPredictRig(t, predictOn)
	r.program("password: ")
	for _, k := range "secret" {
		r.typeKeys(string(k))
		r.requireExact("typing a password")
	}
	r.typeKeys("\r")
	r.program("\r\n$ ")
	r.requireExact("after the password")
}

func TestPredictorTakesBackAWrongGuess(t *testing.T) {
	r := newPredictRig(t, predictOn)
	// A red pen and an open link the program left on, which the guess
	// must not disturb.
	r.program("\x1b]8;id=w;https://example.com/\x1b\\\x1b[31;1m> ")
	r.typeKeys("a")
	r.program("a")
	r.typeKeys("bc")
	if got, _ := r.shownAt(0, 3); got != "b" {
		t.Fatalf("guess not drawn: %q", got)
	}
	// The program draws something else where the guesses are and moves on.
	r.program("\rXYZW")
	r.requireExact("after the wrong guess")
	if r.p.stats.wrong != 1 {
		t.Errorf("wrong guesses: %d, want 1", r.p.stats.wrong)
	}
	r.program("more text with the program's pen")
	r.requireExact("after more output")
}

func TestPredictorRepaintsAttributesUnderAGuess(t *testing.T) {
	r := newPredictRig(t, predictOn)
	// Cells to the right blank but coloured (erased with a blue
	// background), then the default pen.
	r.program("\x1b[44m\x1b[K\x1b[0m$ ")
	r.typeKeys("a")
	r.program("a")
	r.typeKeys("b")
	if got, _ := r.shownAt(0, 3); got != "b" {
		t.Fatalf("guess not drawn: %q", got)
	}
	r.typeKeys("\x7f")
	r.requireExact("after backspace took the guess back")
}

func TestPredictorIsOffOnTheAlternateScreen(t *testing.T) {
	r := newPredictRig(t, predictOn)
	r.program("\x1b[?1049h\x1b[H~\r\n~\x1b[H")
	r.typeKeys("i")
	r.program("-- INSERT --")
	for _, k := range "hello" {
		r.typeKeys(string(k))
		r.requireExact("typing in vim")
	}
	if r.p.stats.predicted != 0 {
		t.Errorf("%d keys predicted on the alternate screen", r.p.stats.predicted)
	}
}

func TestPredictorBelowTheThresholdPredictsNothing(t *testing.T) {
	r := newPredictRig(t, predictAuto)
	r.rtt = 2 * time.Millisecond
	r.program("$ ")
	for _, k := range "echo hi" {
		r.typeKeys(string(k))
		r.requireExact("typing on a fast link")
		r.program(string(k))
	}
	if r.p.stats.predicted != 0 {
		t.Errorf("%d keys predicted below the threshold", r.p.stats.predicted)
	}
	// Nothing changes: the terminal got the program's bytes, no more.
	if got, want := bytes.Join(r.termLog, nil), bytes.Join(r.refLog, nil); !bytes.Equal(got, want) {
		t.Errorf("below the threshold the terminal got %q, the program wrote %q", got, want)
	}
}

func TestPredictorGivesUpOnAStaleGuess(t *testing.T) {
	r := newPredictRig(t, predictOn)
	r.program("$ ")
	r.typeKeys("a")
	r.program("a")
	r.typeKeys("b")
	if got, _ := r.shownAt(0, 3); got != "b" {
		t.Fatalf("guess not drawn: %q", got)
	}
	r.clock = r.clock.Add(500 * time.Millisecond)
	r.tick()
	if got, _ := r.shownAt(0, 3); got != "b" {
		t.Fatalf("guess taken back early: %q", got)
	}
	r.clock = r.clock.Add(time.Second)
	r.tick()
	r.requireExact("after the guess went stale")
	if r.p.stats.stale != 1 {
		t.Errorf("stale guesses: %d, want 1", r.p.stats.stale)
	}
}

func TestPredictorWaitsOutASequenceInProgress(t *testing.T) {
	r := newPredictRig(t, predictOn)
	r.program("$ a")
	r.p.confirmed = true
	r.program("\x1b[3") // the rest of the sequence is still on its way
	r.typeKeys("b")
	r.program("1mb")
	r.requireExact("after the sequence ended")
}

func TestPredictorTakesBackGuessesWhenStopped(t *testing.T) {
	r := newPredictRig(t, predictOn)
	r.program("$ ")
	r.typeKeys("a")
	r.program("a")
	r.typeKeys("bc")
	if got, _ := r.shownAt(0, 4); got != "c" {
		t.Fatalf("guess not drawn: %q", got)
	}
	// What rpty does on its way out: no more guesses, then the modes'
	// reset sequence goes through the predictor.
	r.p.stop()
	r.program("\x1b[?25h")
	r.requireExact("after stopping")
}

func TestPredictorShowsBackspaceAtOnce(t *testing.T) {
	r := newPredictRig(t, predictOn)
	r.program("$ ")
	r.typeKeys("l")
	r.program("l")
	r.typeKeys("s")
	r.program("s")
	r.typeKeys("\x7f")
	if got, _ := r.shownAt(0, 3); got != " " {
		t.Fatalf("backspace: cell 0,3 shows %q, want it blank at once", got)
	}
	if y, x := r.term.Cursor(); y != 0 || x != 3 {
		t.Fatalf("backspace: cursor at %d,%d, want 0,3", y, x)
	}
	r.program("\b \b") // how readline erases
	r.requireExact("after the backspace's echo")
	// Backspace and a new key at once, echoed in one piece.
	r.typeKeys("\x7fx")
	if got, ul := r.shownAt(0, 2); got != "x" || !ul {
		t.Fatalf("backspace then x: cell 0,2 shows %q (underlined %v), want an underlined x", got, ul)
	}
	r.program("\b\x1b[Kx")
	r.requireExact("after backspace and a key")
	// Nothing to take before the prompt's end: no guess.
	r.typeKeys("\x7f")
	r.program("\b\x1b[K")
	r.typeKeys("\x7f")
	r.requireExact("backspace at the prompt")
	r.program("\a")
	r.requireExact("after the bell")
	if r.p.stats.wrong != 0 || r.p.stats.stale != 0 {
		t.Errorf("wrong %d, stale %d, want none", r.p.stats.wrong, r.p.stats.stale)
	}
}

func TestPredictorMovesTheCursorAtOnce(t *testing.T) {
	r := newPredictRig(t, predictOn)
	r.program("$ ")
	r.typeKeys("a")
	r.program("a")
	r.typeKeys("b")
	r.program("b")
	r.typeKeys("\x1b[D")
	if y, x := r.term.Cursor(); y != 0 || x != 3 {
		t.Fatalf("left: cursor at %d,%d, want 0,3 at once", y, x)
	}
	r.program("\b")
	r.requireExact("after the left key's echo")
	r.typeKeys("\x1b[C\x1b[D\x1b[D")
	if y, x := r.term.Cursor(); y != 0 || x != 2 {
		t.Fatalf("right, left, left: cursor at %d,%d, want 0,2 at once", y, x)
	}
	// Output that is not the echo: the cursor goes back where the
	// program has it first.
	r.program("\a")
	r.requireExact("after other output")
}
