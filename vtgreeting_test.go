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

// TestVTOutputIsParsedOffTheReader pins that the reader's afterOutput
// returns without parsing: the greeting's parser goroutine parses the
// output, here held inside its answer to a query (DA, which the emulator
// answers while nobody is attached), with afterOutput long returned. Once
// nothing waits the parser is gone: an idle session holds no goroutine for
// it (TestMain's leak check sees any left after finish).
func TestVTOutputIsParsedOffTheReader(t *testing.T) {
	t.Parallel()
	g := newVTGreeting(24, 80, 100)
	defer g.finish()
	inAnswer := make(chan struct{}, 1)
	letGo := make(chan struct{})
	g.answerWith(func([]byte) {
		inAnswer <- struct{}{}
		<-letGo
	})
	var out []byte
	for i := range 500 {
		out = fmt.Appendf(out, "line %d\r\n", i)
	}
	out = append(out, "\x1b[c\x1b]0;parsed\x07"...)
	g.output(out)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		g.afterOutput()
	}()
	select {
	case <-returned:
	case <-time.After(shortWait):
		close(letGo)
		<-returned
		t.Fatal("afterOutput waited for the parse (and its answer to the query)")
	}
	select {
	case <-inAnswer:
	case <-time.After(shortWait):
		t.Fatal("nothing parsed the output up to its query")
	}
	close(letGo)
	deadline := time.Now().Add(shortWait)
	for {
		g.mu.Lock()
		waiting, busy, parsing := len(g.pending), g.busy, g.parsing
		g.mu.Unlock()
		if waiting == 0 && !busy && !parsing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d bytes wait unparsed (terminal in use %v, parser running %v)", shortWait, waiting, busy, parsing)
		}
		time.Sleep(time.Millisecond)
	}
	if got := g.title(); got != "parsed" {
		t.Fatalf("title %q, want the one the output set", got)
	}
	g.claim()
	parsed := g.parsed
	g.release()
	if parsed != uint64(len(out)) {
		t.Fatalf("parsed %d bytes, want %d", parsed, len(out))
	}
}
