//go:build vtcheck

package vt

import "fmt"

// checkPlain turns on checkPlainLine: `go test -tags vtcheck` runs every
// test with each plain line checked against its cells as it leaves the
// screen.
const checkPlain = true

// checkPlainLine panics unless l, marked plain, holds what its text and pen
// say: cells[:used] its text (printable ASCII) in attributes pen, the rest
// empty, no cluster; for a text-only line, cells all empty. It allocates
// nothing, so that the allocation tests hold with it on.
func checkPlainLine(l *line) {
	if len(l.combined) > 0 {
		panic("vt: plain line has clusters")
	}
	a := l.pen
	for i, c := range l.cells {
		want := cell{}
		if i < l.used && !l.textOnly {
			ch := l.chars[i]
			if ch < 0x20 || ch >= 0x7f {
				panic(fmt.Sprintf("vt: plain line has byte %#x at %d", ch, i))
			}
			want = cell{ch: rune(ch), fg: a.fg, bg: a.bg, cellTail: cellTail{flags: a.flags, ul: a.ul}}
		}
		if c != want {
			panic(fmt.Sprintf("vt: plain line %q (pen %+v, text only %v) has cell %d %+v, want %+v",
				l.chars[:l.used], a, l.textOnly, i, c, want))
		}
	}
}
