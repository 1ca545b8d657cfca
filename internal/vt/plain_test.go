package vt

import (
	"math/rand/v2"
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// TestPlainLinesReachTheScrollbackExactly pins the plain-line path (lines
// of one pen kept as their text, a flood's lines never written as cells):
// floods of plain lines mixed with what ends or breaks it (colours, erases,
// cursor moves, scroll regions, the alternate screen, wide and combining
// characters, lone CR and LF, wrapping, resizes, compactions, scrollbacks
// small, large and too wide to wait raw) leave the same screen and
// scrollback whether written in one go or one byte at a time (which never
// takes the plain path's CR LF loop).
func TestPlainLinesReachTheScrollbackExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 80))
	breaks := []string{"\x1b[31m", "\x1b[1;44m", "\x1b[m", "\x1b[K", "\x1b[2K", "\x1b[1K", "\x1b[3;6r", "\x1b[r",
		"\x1b[?1049h", "\x1b[?1049l", "\x1b[5G", "\x1b[A", "\x1b[2;1H", "\x1b[L", "\x1b[M", "\x1b[P", "\x1b[@",
		"\x1bM", "\x1bD", "\r", "\n", "\b", "\t", "漢", "e\u0301", "\x1b[?7l", "\x1b[?7h", "\x1b[4h", "\x1b[4l",
		"\x1b#8", "\x1b[2J", "\x1b[3J", "\x1b[20h", "\x1b[20l", "\x1b(0", "\x1b(B"}
	for c := range 200 {
		rows, cols := 2+rng.IntN(12), 2+rng.IntN(100)
		scrollback := []int{0, 3, 50, 1000}[rng.IntN(4)]
		if rng.IntN(8) == 0 {
			cols = 300 // 1,000 lines of 300 cells: encoded as they leave
			scrollback = 1000
		}
		whole := New(rows, cols, Options{Scrollback: scrollback})
		bytewise := New(rows, cols, Options{Scrollback: scrollback})
		for range 1 + rng.IntN(6) {
			var data []byte
			for range 20 + rng.IntN(200) {
				if rng.IntN(6) == 0 {
					data = append(data, breaks[rng.IntN(len(breaks))]...)
					continue
				}
				for range rng.IntN(cols + cols/4 + 1) {
					data = append(data, byte(0x20+rng.IntN(0x5f)))
				}
				data = append(data, "\r\n"...)
			}
			whole.Write(data)
			for i := range data {
				bytewise.Write(data[i : i+1])
			}
			switch rng.IntN(4) {
			case 0:
				r, k := 2+rng.IntN(12), 2+rng.IntN(100)
				whole.Resize(r, k)
				bytewise.Resize(r, k)
			case 1:
				whole.Compact()
				bytewise.Compact()
			}
		}
		if d := xtermjs.Diff(stateOf(whole), stateOf(bytewise)); len(d) > 0 {
			t.Fatalf("case %d (%dx%d, scrollback %d): one write differs from bytes one at a time:\n%s", c, rows, cols, scrollback, limitLines(d, 10))
		}
	}
}

// TestPlainLinesMatchTheGeneralPath pins what the plain path stores against
// the general one: a flood of lines in changing pens (some longer than the
// screen is wide, some empty, some split across writes) leaves the same
// screen and scrollback as the same text printed in insert mode, which
// takes every character through printRune and never the plain path (on
// rows blank past the cursor, inserting is writing).
func TestPlainLinesMatchTheGeneralPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 81))
	pens := []string{"\x1b[m", "\x1b[31m", "\x1b[1;44m", "\x1b[38;5;1m", "\x1b[38;2;1;2;3m", "\x1b[4:3m", "\x1b[7m"}
	for c := range 100 {
		rows, cols := 2+rng.IntN(12), 2+rng.IntN(100)
		scrollback := []int{0, 3, 50, 1000}[rng.IntN(4)]
		if rng.IntN(8) == 0 {
			cols, scrollback = 300, 1000
		}
		plain := New(rows, cols, Options{Scrollback: scrollback})
		general := New(rows, cols, Options{Scrollback: scrollback})
		general.Write([]byte("\x1b[4h"))
		for range 1 + rng.IntN(6) {
			var data []byte
			for range 20 + rng.IntN(300) {
				if rng.IntN(4) == 0 {
					data = append(data, pens[rng.IntN(len(pens))]...)
				}
				for range rng.IntN(cols + cols/4 + 1) {
					data = append(data, byte(0x20+rng.IntN(0x5f)))
				}
				data = append(data, "\r\n"...)
			}
			for len(data) > 0 {
				n := min(len(data), 1+rng.IntN(4096))
				plain.Write(data[:n])
				general.Write(data[:n])
				data = data[n:]
			}
			if rng.IntN(3) == 0 {
				plain.Compact()
				general.Compact()
			}
		}
		general.Write([]byte("\x1b[4l"))
		if d := xtermjs.Diff(stateOf(general), stateOf(plain)); len(d) > 0 {
			t.Fatalf("case %d (%dx%d, scrollback %d): the plain path differs from the general one:\n%s", c, rows, cols, scrollback, limitLines(d, 10))
		}
	}
}
