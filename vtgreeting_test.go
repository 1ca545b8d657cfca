package reconnectingpty

import (
	"fmt"
	"testing"
	"time"
)

// TestVTScrolledLinesAreEncodedOnceOutputPauses: lines a flood scrolls off
// wait unencoded while it lasts (that is the saving), and are encoded
// soon after the output pauses, and the cells kept for reuse while lines
// arrived are let go, so an idle session holds its scrollback compactly,
// not as cells.
func TestVTScrolledLinesAreEncodedOnceOutputPauses(t *testing.T) {
	t.Parallel()
	g := newVTGreeting(24, 80, 1000)
	defer g.finish()
	var flood []byte
	for i := range 3000 {
		flood = fmt.Appendf(flood, "line %d of a flood\r\n", i)
	}
	start := time.Now()
	g.lastCompact = start // as if just compacted: the next is due in vtCompactEvery
	g.output(flood)
	g.claim()
	waiting := g.term.PendingLines()
	g.release()
	if took := time.Since(start); took < vtCompactEvery*4/5 {
		if waiting == 0 {
			t.Fatalf("no scrolled line waits unencoded %v after a flood: every line was encoded as it left the screen", took)
		}
	} else {
		t.Logf("parsing took %v, past the compaction interval: the lines may have been encoded already", took)
	}
	deadline := time.Now().Add(shortWait)
	for {
		g.claim()
		waiting = g.term.PendingLines()
		held := g.term.HeldLines()
		g.release()
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d scrolled lines still unencoded, %d lines of cells held, %v after the output paused", waiting, held, shortWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d > shortWait {
		t.Fatalf("encoded after %v", d)
	}
}
