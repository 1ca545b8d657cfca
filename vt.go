package reconnectingpty

import (
	"os/exec"
	"slices"
	"sync"
	"time"

	"cdr.dev/slog/v3"

	"github.com/reconnectingpty/reconnectingpty/internal/vt"
)

const (
	// vtParseAhead bounds the output the greeting holds unparsed while
	// the parser or the compaction timer has the emulator. Past it the
	// reader waits, so memory stays bounded.
	vtParseAhead = 256 << 10
	// vtCompactEvery is how often, while output flows, the scrollback
	// lines that left the screen are encoded (see vt.Terminal.Compact);
	// vtCompactIdle is how long after the output pauses the rest are.
	vtCompactEvery = 50 * time.Millisecond
	vtCompactIdle  = 100 * time.Millisecond
)

// vtGreeting is the vt backend's greeting: every output byte and resize is
// fed, in order, to an in-process terminal emulator, and a joining
// connection is sent a snapshot of that terminal's state (screen,
// scrollback, alternate screen, cursor, modes, title, pen), drawn at the
// connection's size.
//
// The PTY reader does not parse: once it has relayed a chunk it starts a
// parser goroutine (afterOutput) unless one is running, and goes back to
// reading at once, so the PTY is read as promptly as on buffered and the
// parse runs while the reader waits for the program. The parser takes all
// output waiting at each turn, so while output floods it parses in batches
// as large as it has fallen behind, and it exits once none waits (an idle
// session holds no goroutine for it). The reader waits for it only when it
// is vtParseAhead behind, which bounds the memory. Whoever takes the
// terminal (the parser, the compaction timer, or a method called under
// the core's lock) first parses everything given to output so far: with
// the reader held off by that lock, what a method sees is exactly the
// output fanned out so far, so a snapshot plus the live output after it
// is exact.
//
// Lines scrolled off during a flood wait unencoded, so that the many
// pushed out of a full scrollback soon after cost nothing more; they are
// encoded every vtCompactEvery while output flows and vtCompactIdle after
// it pauses (a timer), which bounds that memory to a moment's output.
type vtGreeting struct {
	// term is used by whoever set busy: the reader, the compaction
	// timer, or a caller holding the core's lock.
	term *vt.Terminal
	// answer writes the emulator's answers to queries to the program.
	answer func([]byte)

	mu      sync.Mutex
	changed *sync.Cond // busy or len(pending) changed
	pending []byte     // output not yet given to the emulator
	spare   []byte     // the last batch parsed, for reuse
	busy    bool       // term is in use
	stopped bool       // finish was called: no more compaction or parser
	timer   sync.WaitGroup
	// onReader has afterOutput parse on the reader's goroutine instead
	// (Server.vtParseOnReader, for benchmarks); set before any output.
	onReader bool
	// parsing is true while a parser goroutine (see afterOutput) runs;
	// parsers counts it for finish to wait for.
	parsing bool
	parsers sync.WaitGroup
	idle    *time.Timer // compacts once the output has paused
	// idleSet is true while the idle timer is set: it is not set again,
	// so that callers coming often cannot put it off forever.
	idleSet bool

	// Whoever has the terminal's:
	replies     []byte
	snapshotLen int // the last snapshot's length
	lastCompact time.Time
	// parsed counts the output bytes parsed, and answered is that count
	// at the end of the last batch that had a query the emulator answered:
	// output up to there holds a query that has its answer already.
	parsed, answered uint64
	// resizes counts the resizes: with parsed, it tells whether the
	// terminal changed since a snapshot.
	resizes uint64

	// restored is for a terminal an upgrade handed over (vtrestored.go);
	// under mu.
	restored restoredTerm
}

func newVTGreeting(height, width uint16, scrollback int) *vtGreeting {
	term := vt.New(int(height), int(width), vt.Options{Scrollback: scrollback})
	// Nobody is attached yet: a program that asks the terminal something
	// on start (DA, cursor position) gets the answer xterm would give
	// rather than waiting for a client that is not there.
	term.SetAnswerQueries(true)
	g := &vtGreeting{term: term, answer: func([]byte) {}}
	g.changed = sync.NewCond(&g.mu)
	g.idle = time.AfterFunc(time.Hour, g.compactIdle)
	g.idle.Stop()
	return g
}

func (g *vtGreeting) answerWith(answer func([]byte)) { g.answer = answer }

// output keeps a copy of p for the emulator. Past vtParseAhead of output
// waiting while someone parses, the reader waits for them, so memory stays
// bounded.
func (g *vtGreeting) output(p []byte) {
	g.mu.Lock()
	g.restored.quiet = false
	// (Not busy, nobody would parse it: a restored terminal's pending
	// snapshot may be longer than vtParseAhead, and afterOutput starts
	// the parser.)
	for len(g.pending) >= vtParseAhead && g.busy {
		g.changed.Wait()
	}
	if g.pending == nil && cap(g.spare) > 0 {
		g.pending, g.spare = g.spare[:0], nil
	}
	g.pending = append(g.pending, p...)
	g.mu.Unlock()
}

// afterOutput has the output the reader has just relayed parsed off its
// goroutine: it starts the parser unless someone has the terminal (who
// parses it, or starts the parser on release).
func (g *vtGreeting) afterOutput() {
	if g.onReader {
		g.parse()
		return
	}
	g.mu.Lock()
	g.startParserLocked()
	g.mu.Unlock()
}

// startParserLocked starts a parser goroutine if output waits and nobody
// has the terminal. It holds the terminal until no output waits; finish
// waits for it. The caller holds mu.
func (g *vtGreeting) startParserLocked() {
	if g.busy || g.stopped || len(g.pending) == 0 {
		return
	}
	g.busy, g.parsing = true, true
	g.parsers.Add(1)
	go func() {
		defer g.parsers.Done()
		g.catchUp()
		g.mu.Lock()
		g.parsing = false
		g.mu.Unlock()
		g.release()
	}()
}

// parse parses whatever output waits on the caller's goroutine, if nobody
// is (a restored terminal's snapshot, parsed by the restore's workers).
func (g *vtGreeting) parse() {
	g.mu.Lock()
	if g.busy || len(g.pending) == 0 {
		g.mu.Unlock()
		return
	}
	g.busy = true
	g.mu.Unlock()
	g.catchUp()
	g.release()
}

// catchUp feeds pending output to the emulator until there is none. The
// caller has the terminal.
func (g *vtGreeting) catchUp() {
	var batch []byte
	for {
		g.mu.Lock()
		if batch != nil {
			g.spare = batch[:0]
		}
		batch, g.pending = g.pending, nil
		g.restored.applyAnswering(g.term)
		if len(batch) == 0 {
			// An idle session keeps no more than a keystroke's echo
			// needs; a burst allocates afresh.
			if cap(g.spare) > 4<<10 {
				g.spare = nil
			}
			g.mu.Unlock()
			return
		}
		g.changed.Broadcast()
		g.mu.Unlock()
		_, _ = g.term.Write(batch)
		g.parsed += uint64(len(batch))
		if g.replies = g.term.AppendReplies(g.replies[:0]); len(g.replies) > 0 {
			g.answered = g.parsed
			g.answer(g.replies)
		}
		if g.term.PendingLines() > 0 {
			if now := time.Now(); now.Sub(g.lastCompact) >= vtCompactEvery {
				g.term.Compact()
				g.lastCompact = now
			}
		}
	}
}

// compactIdle runs on the idle timer: it encodes what is left unencoded,
// unless the terminal is in use (whoever has it sets the timer again).
func (g *vtGreeting) compactIdle() {
	g.mu.Lock()
	g.idleSet = false
	if g.busy || g.stopped {
		g.mu.Unlock()
		return
	}
	g.busy = true
	g.timer.Add(1)
	defer g.timer.Done()
	g.mu.Unlock()
	g.term.Compact()
	g.lastCompact = time.Now()
	// Output that came meanwhile waited for this.
	g.catchUp()
	g.release()
}

// claim waits until nobody else has the terminal, takes it for the caller
// until release, and parses all output given so far. The core's lock, held
// by every caller, keeps more output from arriving meanwhile.
func (g *vtGreeting) claim() {
	g.mu.Lock()
	for g.busy {
		g.changed.Wait()
	}
	g.busy = true
	g.mu.Unlock()
	g.catchUp()
}

// release gives up the terminal, setting the idle timer if lines wait to
// be encoded, and starting the parser if output came after the holder's
// last catch-up.
func (g *vtGreeting) release() {
	g.mu.Lock()
	g.busy = false
	g.startParserLocked()
	if !g.busy && !g.stopped && !g.idleSet && g.term.HeldLines() > 0 {
		g.idleSet = true
		g.idle.Reset(vtCompactIdle)
	}
	g.changed.Broadcast()
	g.mu.Unlock()
}

// finish stops the compaction timer and the parser and waits for them;
// the reader is done, so no more output comes. Output left unparsed is
// parsed by whoever next takes the terminal.
func (g *vtGreeting) finish() {
	g.mu.Lock()
	g.stopped = true
	g.idle.Stop()
	g.mu.Unlock()
	g.timer.Wait()
	g.parsers.Wait()
}

func (g *vtGreeting) resized(height, width uint16) {
	if g.sameSizeIfQuiet(height, width) {
		return
	}
	g.claim()
	defer g.release()
	g.term.Resize(int(height), int(width))
	g.resizes++
}

// attached hands query answering to the clients while any is attached:
// their terminals answer, and two answers would confuse the program.
func (g *vtGreeting) attached(n int) {
	if g.deferAnswering(n == 0) {
		return
	}
	g.claim()
	defer g.release()
	g.term.SetAnswerQueries(n == 0)
}

func (g *vtGreeting) greet(dst []byte, _ *replayRing) []byte {
	g.claim()
	defer g.release()
	// One allocation at most, not a dozen as the snapshot grows: the
	// next is about as long as the last.
	dst = slices.Grow(dst, g.snapshotLen+g.snapshotLen/8)
	dst = g.term.AppendSnapshot(dst)
	g.snapshotLen = len(dst)
	return dst
}

// exactRedraw: a snapshot is the exact state, so a client resuming from
// nothing gets it rather than the raw output since the start.
func (*vtGreeting) exactRedraw() {}

// answeredThrough is the output offset up to which a query the emulator
// answered may lie: a client resuming from before it must not get that
// output again, or its terminal would answer the query a second time and
// the program read the answer as typed keys.
func (g *vtGreeting) answeredThrough() uint64 {
	if n, ok := g.answeredIfQuiet(); ok {
		return n
	}
	g.claim()
	defer g.release()
	return g.answered
}

// title is the window title the program last set.
func (g *vtGreeting) title() string {
	g.claim()
	defer g.release()
	return g.term.Title()
}

// startVT starts a vt session: the command on a PTY of its own, the shared
// core's fan-out and resume ring, and a terminal emulator that greets every
// attaching connection with the program's current screen.
func startVT(s *Server, cmd *exec.Cmd, height, width uint16, logger slog.Logger, onDone func()) (*ptySession, error) {
	g := newVTGreeting(height, width, s.cfg.ScrollbackLines)
	g.onReader = s.vtParseOnReader
	return startPTYSession(s, BackendVT, g, cmd, height, width, logger, onDone)
}

// vtState is a vt session's terminal as an upgrade hands it over.
type vtState struct {
	// Term is the terminal itself (vt.Terminal.AppendState), from
	// format 2 on; in the bytes of a state, TermAt.
	Term   []byte
	TermAt byteRange
	// Snapshot redraws the terminal (vt.Terminal.AppendSnapshot) at
	// Height x Width, in format 1 (which this release reads, and no
	// longer writes); in the bytes of a state, SnapshotAt.
	Snapshot      []byte
	SnapshotAt    byteRange
	Height, Width uint16
	// Parsed and Answered are the greeting's counts of the same names:
	// offsets in the session's output.
	Parsed, Answered uint64
}

// state takes the terminal's state, everything given to output parsed,
// appending its encoding to buf (which it returns in Term).
func (g *vtGreeting) state(buf []byte) *vtState {
	g.claim()
	defer g.release()
	rows, cols := g.term.Size()
	term := g.term.AppendState(buf)
	return &vtState{
		Term:   term,
		Height: uint16(rows), Width: uint16(cols),
		Parsed: g.parsed, Answered: g.answered,
	}
}
