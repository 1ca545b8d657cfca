package reconnectingpty

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/vt"
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

// TestVTReaderParsesItsOwnChunks pins that the reader parses the output
// itself, straight from its buffer, before afterOutput returns once the
// PTY is drained (or each chunk, where parseBatch is 0): nothing is
// left to another goroutine (an idle session holds none), and a query in
// the chunk is answered by then.
func TestVTReaderParsesItsOwnChunks(t *testing.T) {
	t.Parallel()
	g := newVTGreeting(24, 80, 100)
	defer g.finish()
	// No compaction timer: holding the terminal, it would leave a chunk
	// to parse when it gives the terminal up, and this test is about the
	// reader.
	g.stopped = true
	var answers []byte
	g.answerWith(func(p []byte) { answers = append(answers, p...) })
	var total int
	buf := make([]byte, 0, 4<<10)
	for i := range 300 {
		buf = fmt.Appendf(buf[:0], "line %d\r\n", i)
		if i == 299 {
			buf = append(buf, "\x1b[c\x1b]0;parsed\x07"...)
		}
		g.output(buf)
		// The read drained the PTY; and, every other chunk, the
		// benchmark's option of parsing each chunk even while the PTY
		// has more ready.
		g.parseBatch = vtParseBatch
		more := i%2 == 0
		if more {
			g.parseBatch = 0
		}
		g.afterOutput(more)
		total += len(buf)
		g.mu.Lock()
		waiting, lent, busy := len(g.pending), len(g.lent), g.busy
		g.mu.Unlock()
		if waiting != 0 || lent != 0 || busy {
			t.Fatalf("chunk %d: afterOutput returned with %d bytes copied and %d lent unparsed (terminal in use %v)", i, waiting, lent, busy)
		}
		// The reader reuses its buffer at once: the terminal must
		// not hold on to it.
		for j := range buf {
			buf[j] = 'X'
		}
	}
	if len(answers) == 0 {
		t.Fatal("the query in the last chunk was not answered by the time afterOutput returned")
	}
	if got := g.title(); got != "parsed" {
		t.Fatalf("title %q, want the one the output set", got)
	}
	snap := string(g.greet(nil, nil))
	if strings.Contains(snap, "X") || !strings.Contains(snap, "line 299") {
		t.Fatalf("snapshot does not show the output as given: %q", tail(snap))
	}
	g.claim()
	parsed := g.parsed
	g.release()
	if parsed != uint64(total) {
		t.Fatalf("parsed %d bytes, want %d", parsed, total)
	}
}

// TestVTChunkLentToTheGreetingIsCopiedByAnotherTaker pins the lent chunk's
// rule: a method that takes the terminal between the reader's output and
// its afterOutput (an attach, under the core's lock) parses the chunk, so
// its snapshot is exact, and copies it, so that the reader may then reuse
// its buffer without the terminal seeing the change.
func TestVTChunkLentToTheGreetingIsCopiedByAnotherTaker(t *testing.T) {
	t.Parallel()
	g := newVTGreeting(24, 80, 100)
	defer g.finish()
	ref := newVTGreeting(24, 80, 100)
	defer ref.finish()
	chunk := []byte("\x1b[1;31mlent chunk\x1b[m\r\nnext line")
	ref.output(bytes.Clone(chunk))
	ref.afterOutput(false)
	want := ref.greet(nil, nil)

	g.output(chunk)
	if got := g.greet(nil, nil); !bytes.Equal(got, want) {
		t.Fatalf("a greeting between output and afterOutput:\n%q\nwant\n%q", got, want)
	}
	for i := range chunk {
		chunk[i] = 'X'
	}
	g.afterOutput(false)
	if got := g.greet(nil, nil); !bytes.Equal(got, want) {
		t.Fatalf("after the reader reused its buffer:\n%q\nwant\n%q", got, want)
	}
}

// TestVTReaderParsesInBatchesWhileThePTYHasMore pins the batching: a
// chunk read while the PTY had more ready waits, copied, until a read
// drains the PTY or vtParseBatch waits; a greeting meanwhile still sees
// everything; and nothing waits once the PTY is drained.
func TestVTReaderParsesInBatchesWhileThePTYHasMore(t *testing.T) {
	t.Parallel()
	g := newVTGreeting(24, 80, 100)
	defer g.finish()
	// No compaction timer: it would parse what waits when it gives the
	// terminal up, and this test is about when the reader parses.
	g.stopped = true
	ref := newVTGreeting(24, 80, 100)
	defer ref.finish()
	parsed := func() uint64 {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.busy {
			t.Fatal("terminal in use with nobody calling")
		}
		return g.parsed
	}
	buf := make([]byte, 0, 32<<10)
	chunk := func(i int) []byte {
		buf = buf[:0]
		for len(buf) < 8<<10 {
			buf = fmt.Appendf(buf, "chunk %d line %d\r\n", i, len(buf))
		}
		ref.output(bytes.Clone(buf))
		ref.afterOutput(false)
		return buf
	}
	var given uint64
	i := 0
	for ; given+8<<10 < vtParseBatch; i++ {
		p := chunk(i)
		g.output(p)
		g.afterOutput(true)
		given += uint64(len(p))
		if n := parsed(); n != 0 {
			t.Fatalf("chunk %d, the PTY has more: %d bytes parsed, want none yet", i, n)
		}
	}
	if got, want := g.greet(nil, nil), ref.greet(nil, nil); !bytes.Equal(got, want) {
		t.Fatal("a greeting while output waited unparsed is not the terminal's state")
	}
	// The greeting parsed what waited: batching starts afresh.
	if n := parsed(); n != given {
		t.Fatalf("after a greeting %d of %d bytes parsed", n, given)
	}
	for ; ; i++ {
		p := chunk(i)
		g.output(p)
		g.afterOutput(true)
		given += uint64(len(p))
		if parsed() == given {
			break
		}
		g.mu.Lock()
		waiting := len(g.pending)
		g.mu.Unlock()
		if waiting >= vtParseBatch {
			t.Fatalf("%d bytes wait unparsed, past vtParseBatch (%d)", waiting, vtParseBatch)
		}
	}
	p := chunk(i + 1)
	g.output(p)
	g.afterOutput(true)
	given += uint64(len(p))
	p = chunk(i + 2)
	g.output(p)
	g.afterOutput(false) // the read drained the PTY
	given += uint64(len(p))
	if n := parsed(); n != given {
		t.Fatalf("PTY drained: %d of %d bytes parsed", n, given)
	}
	if got, want := g.greet(nil, nil), ref.greet(nil, nil); !bytes.Equal(got, want) {
		t.Fatal("after batches the terminal's state differs from one fed chunk by chunk")
	}
}

// TestVTOutputWhileTheTerminalIsHeldIsParsedOnRelease pins that output the
// reader gives while someone else has the terminal (the compaction timer,
// a restore's parse) is parsed when they give it up, not left until the
// next output: a query in it is answered at once, though nothing follows.
func TestVTOutputWhileTheTerminalIsHeldIsParsedOnRelease(t *testing.T) {
	t.Parallel()
	g := newVTGreeting(24, 80, 100)
	defer g.finish()
	var answers []byte
	g.answerWith(func(p []byte) { answers = append(answers, p...) })
	g.claim() // as the compaction timer would
	g.output([]byte("prompt$ \x1b[6n"))
	g.afterOutput(false)
	if len(answers) > 0 {
		t.Fatal("answered while another had the terminal")
	}
	g.release()
	if string(answers) != "\x1b[1;9R" {
		t.Fatalf("answers %q once the terminal was given up, want the cursor position", answers)
	}
}

// TestVTLateJoinerMidFloodGetsTheExactScreen pins, through a real session,
// that connections attaching while the program floods output (the reader
// parsing in batches meanwhile) get a snapshot that, with the live output
// after it, leaves their terminals exactly where one attached all along
// is. (The narrow windows, a lent chunk or a batch waiting as a method
// takes the terminal, are forced in the unit tests above.)
func TestVTLateJoinerMidFloodGetsTheExactScreen(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendVT, Config{})
	cmd, err := ts.srv.cfg.Commander.Command(t.Context(), CommandRequest{
		Command: `seq -f 'flood line %g E[31mredE[m and E[4munderlinedE[m' 1 40000 | tr E '\033'; sleep 0.2`,
	})
	if err != nil {
		t.Fatal(err)
	}
	g := newVTGreeting(24, 80, ts.srv.cfg.ScrollbackLines)
	ps, err := startPTYSession(ts.srv, BackendVT, g, cmd, 24, 80, ts.srv.logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ps.close(disconnect{reason: DisconnectServerShutdown})
		<-ps.done()
	}()
	readAll := func() (<-chan []byte, attachment) {
		client, server := net.Pipe()
		t.Cleanup(func() { _ = client.Close() })
		a, err := ps.attach(&conn{Conn: server}, attachRequest{height: 24, width: 80, queueSize: ts.srv.cfg.ConnQueueSize})
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan []byte, 1)
		go func() {
			// Small reads: the reader's direct writes to this
			// client take a while, so the PTY fills behind it and
			// it parses in batches.
			var b []byte
			buf := make([]byte, 512)
			for {
				n, err := client.Read(buf)
				b = append(b, buf[:n]...)
				if err != nil {
					break
				}
			}
			out <- b
		}()
		return out, a
	}
	first, a1 := readAll()
	defer a1.detach()
	// Late connections join at several points of the flood.
	var lates []<-chan []byte
	for _, at := range []uint64{200 << 10, 500 << 10, 800 << 10, 1100 << 10} {
		for deadline := time.Now().Add(shortWait); ; {
			ps.mu.Lock()
			n := ps.ring.written()
			ps.mu.Unlock()
			if n > at {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the flood did not reach %d bytes", at)
			}
			time.Sleep(100 * time.Microsecond)
		}
		late, a := readAll()
		defer a.detach()
		lates = append(lates, late)
	}
	all := <-first
	if !bytes.Contains(all, []byte("flood line 40000 ")) {
		t.Fatalf("the first connection's output ends %q", tail(string(all)))
	}
	screen := func(stream []byte) []byte {
		term := vt.New(24, 80, vt.Options{Scrollback: ts.srv.cfg.ScrollbackLines})
		_, _ = term.Write(stream)
		return term.AppendSnapshot(nil)
	}
	want := screen(all)
	for i, late := range lates {
		joined := <-late
		if len(joined) >= len(all) {
			t.Fatalf("late connection %d got %d bytes, the first %d: it joined after the flood", i, len(joined), len(all))
		}
		if got := screen(joined); !bytes.Equal(got, want) {
			t.Fatalf("late connection %d's terminal:\n%q\nthe first's:\n%q", i, tail(string(got)), tail(string(want)))
		}
	}
}
