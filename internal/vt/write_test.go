package vt

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

func TestPrintableRunStopsAtTheFirstNonPrintableByte(t *testing.T) {
	slow := func(p []byte) int {
		for i, c := range p {
			if c < 0x20 || c >= 0x7f {
				return i
			}
		}
		return len(p)
	}
	// Every byte value at every offset of a run long enough to take the
	// eight-byte path, with printable neighbours of every kind (the
	// extremes 0x20 and 0x7e borrow and carry nearest to the edges).
	for _, fill := range []byte{0x20, 'a', 0x7e} {
		for n := 0; n <= 20; n++ {
			for pos := 0; pos < n; pos++ {
				for v := 0; v < 256; v++ {
					p := bytes.Repeat([]byte{fill}, n)
					p[pos] = byte(v)
					if got, want := printableRun(p), slow(p); got != want {
						t.Fatalf("printableRun(%q) = %d, want %d", p, got, want)
					}
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		p := mostlyPrintable(rng, 30)
		if got, want := printableRun(p), slow(p); got != want {
			t.Fatalf("printableRun(%q) = %d, want %d", p, got, want)
		}
	}
}

// TestTextFastPathMatchesOneByteAtATime pins Write's printable-ASCII path
// (runs found and written eight bytes at a time, CR LF between lines of
// text handled inside the run) against the same stream written one byte
// at a time, where every run is one byte long and every control goes
// through Write's dispatch: text of every length across the eight-byte
// words and the line's end, with CR LF, lone CR and LF, colours, cursor
// moves, backspaces, insert mode and the DEC graphics charset in between.
func TestTextFastPathMatchesOneByteAtATime(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pieces := []string{"\r\n", "\r\n", "\r\n", "\r", "\n", "\b", "\x1b[31m", "\x1b[1;44m", "\x1b[m", "\x1b[38;5;3m",
		"\x1b[4h", "\x1b[4l", "\x1b(0", "\x1b(B", "\x1b[5G", "\x1b[2;70H", "\x1b[K", "\x1b[2J", "\x1b[?7l", "\x1b[?7h"}
	for c := range 300 {
		var data []byte
		for range 40 + rng.IntN(200) {
			if rng.IntN(3) == 0 {
				data = append(data, pieces[rng.IntN(len(pieces))]...)
				continue
			}
			for range rng.IntN(100) {
				data = append(data, byte(0x20+rng.IntN(0x5f)))
			}
		}
		rows, cols := 2+rng.IntN(10), 1+rng.IntN(90)
		whole := New(rows, cols, Options{Scrollback: 20})
		whole.Write(data)
		bytewise := New(rows, cols, Options{Scrollback: 20})
		for i := range data {
			bytewise.Write(data[i : i+1])
		}
		if d := xtermjs.Diff(stateOf(whole), stateOf(bytewise)); len(d) > 0 {
			t.Fatalf("case %d (%dx%d, %q): one write differs from bytes one at a time:\n%s", c, rows, cols, data, limitLines(d, 10))
		}
		if whole.joinWidth != bytewise.joinWidth {
			t.Fatalf("case %d: join width %d after one write, %d bytewise", c, whole.joinWidth, bytewise.joinWidth)
		}
	}
}

// TestCRLFAfterTextBlanksTheHalfOfAWideCharacterLeft pins that a run of
// text ended by CR LF (handled inside the printable-ASCII loop) ends as any
// run does: a wide character whose left half it overwrote leaves no lone
// right half, but an empty narrow cell, as xterm.js's print leaves it, and
// as a run ended by the end of a write does.
func TestCRLFAfterTextBlanksTheHalfOfAWideCharacterLeft(t *testing.T) {
	for _, writes := range [][]string{
		{"漢漢漢\rabc\r\nx"},
		{"漢漢漢\rabc", "\r\nx"},
	} {
		term := New(3, 10, Options{})
		for _, w := range writes {
			term.Write([]byte(w))
		}
		ln := term.buf.lines[0]
		if got := ln.text(2) + "|" + ln.text(3); got != "c|" {
			t.Fatalf("%q: columns 2 and 3 hold %q, want %q", writes, got, "c|")
		}
		if w := ln.cells[3].width(); w != 1 {
			t.Fatalf("%q: the cut wide character's right half is left with width %d, want an empty cell of width 1", writes, w)
		}
		if w := ln.cells[4].width(); w != 2 {
			t.Fatalf("%q: the next wide character has width %d, want 2", writes, w)
		}
	}
}

// mostlyPrintable is up to 39 random bytes, printable ASCII but for about
// one in oneIn, which is any byte.
func mostlyPrintable(r *rand.Rand, oneIn int) []byte {
	p := make([]byte, r.IntN(40))
	for i := range p {
		p[i] = byte(0x20 + r.IntN(0x5f))
		if r.IntN(oneIn) == 0 {
			p[i] = byte(r.IntN(256))
		}
	}
	return p
}
