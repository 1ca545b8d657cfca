//go:build vtcheck

package vt

import (
	"bytes"
	"fmt"
)

// checkPlain turns on checkPlainLine: `go test -tags vtcheck` runs every
// test with each plain line checked against its cells as it leaves the
// screen.
const checkPlain = true

// checkPlainLine panics unless l, marked plain, encodes from its text and
// pen exactly as from its cells.
func checkPlainLine(l *line) {
	if l.textOnly {
		for i, c := range l.cells {
			if c != (cell{}) {
				panic(fmt.Sprintf("vt: text-only line %q has cell %d set: %+v", l.chars[:l.used], i, c))
			}
		}
		if len(l.combined) > 0 {
			panic("vt: text-only line has clusters")
		}
		return
	}
	fromText := encodePlain(nil, len(l.cells), l.pen, l.chars[:l.used])
	fromCells := encodeLine(nil, l)
	if !bytes.Equal(fromText, fromCells) {
		panic(fmt.Sprintf("vt: plain line %q (pen %+v, %d cells used) differs from its cells: %x against %x",
			l.chars[:l.used], l.pen, l.used, fromText, fromCells))
	}
}
