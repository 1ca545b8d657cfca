package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// TestPredictorLeavesXtermJSAsTheProgramDrew replays in xterm.js itself
// everything the predictor wrote while guesses were confirmed, taken back
// as wrong, backspaced and left to go stale, over coloured cells, a bold
// pen and an open link: at each point where no guess is shown, the screen,
// pen, cursor and links are the program's, as a terminal without
// prediction shows them.
func TestPredictorLeavesXtermJSAsTheProgramDrew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	x, err := xtermjs.Start(ctx)
	if errors.Is(err, xtermjs.ErrNotInstalled) {
		t.Skipf("xterm.js renderer unavailable: %v", err)
	}
	if err != nil {
		t.Fatalf("start xterm.js: %v", err)
	}
	defer func() {
		if err := x.Close(); err != nil {
			t.Errorf("close xterm.js: %v", err)
		}
	}()

	r := newPredictRig(t, predictOn)
	var reqs []xtermjs.Request
	var names []string
	checkpoint := func(name string) {
		if len(r.p.shown) != 0 {
			t.Fatalf("%s: %d guesses still shown", name, len(r.p.shown))
		}
		rows, cols := r.ref.Size()
		reqs = append(reqs,
			xtermjs.Request{Rows: rows, Cols: cols, Chunks: slices.Clone(r.refLog)},
			xtermjs.Request{Rows: rows, Cols: cols, Chunks: slices.Clone(r.termLog)})
		names = append(names, name)
	}

	// An echoing shell with a coloured prompt.
	r.program("\x1b[1;33m~\x1b[0m $ ")
	r.typeKeys("g")
	r.program("g")
	r.typeKeys("it st")
	r.program("it")
	r.program(" st")
	checkpoint("echoed keys")
	r.typeKeys("x")
	r.typeKeys("\x7f")
	r.program("x\b\x1b[K")
	checkpoint("a backspaced guess")
	r.typeKeys("\x7f")
	r.program("\b \b")
	checkpoint("a backspace echoed")
	r.typeKeys("\r")
	r.program("\r\n")

	// A line erased blue, a bold green pen and an open link (with an id;
	// without one nothing is drawn: it could not be opened again as the
	// same link); the program echoes one key and stops.
	for _, link := range []string{"\x1b]8;id=l1;https://example.com/a\x1b\\", "\x1b]8;;https://example.com/b\x1b\\"} {
		r.program("\x1b[44m\x1b[K\x1b[1;32m" + link + "> ")
		r.typeKeys("a")
		r.program("a")
		r.typeKeys("bcd")
		if _, id := r.p.model.PenLink(); id == "" && len(r.p.shown) != 0 {
			t.Errorf("guesses drawn while the pen holds a link without an id, which could not be opened again")
		}
		r.clock = r.clock.Add(2 * time.Second)
		r.tick()
		checkpoint("stale guesses over a blue line, link " + link[2:])
		r.program("still the program's pen\x1b]8;;\x1b\\\x1b[0m\r\n")
		checkpoint("the program's pen after stale guesses, link " + link[2:])
	}

	// A wrong guess: the program redraws the line its own way.
	r.program("$ ")
	r.typeKeys("l")
	r.program("l")
	r.typeKeys("s -l")
	r.program("\r\x1b[K\x1b[7m(reverse-i-search)`l': \x1b[0mls -la")
	checkpoint("a wrong guess")

	states, err := x.RenderBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("render in xterm.js: %v", err)
	}
	for i, name := range names {
		if d := xtermjs.Diff(states[2*i], states[2*i+1]); len(d) > 0 {
			t.Errorf("%s: xterm.js differs from the program's screen:\n%s", name, strings.Join(d, "\n"))
		}
	}
}
