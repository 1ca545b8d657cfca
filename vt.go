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
	// the compaction timer or a restore's parse has the emulator. Past it
	// the reader waits, so memory stays bounded.
	vtParseAhead = 256 << 10
	// vtParseBatch is how much output the reader lets wait unparsed
	// while the PTY has more ready: it parses once a read drains the PTY
	// or this much waits, so that during a flood it goes back to a PTY
	// with output in it before it parses (docs/performance.md has what
	// it measured).
	vtParseBatch = 128 << 10
	// vtCompactEvery is how often, while output flows, the scrollback
	// lines that left the screen are encoded (see vt.Terminal.Compact);
	// vtCompactIdle is how long after the output pauses the rest are.
	vtCompactEvery = 50 * time.Millisecond
	vtCompactIdle  = 100 * time.Millisecond
	// vtSpareKept is the most a session keeps of the buffer it last
	// gathered output in once the output pauses.
	vtSpareKept = 4 << 10
)

// vtGreeting is the vt backend's greeting: every output byte and resize is
// fed, in order, to an in-process terminal emulator, and a joining
// connection is sent a snapshot of that terminal's state (screen,
// scrollback, alternate screen, cursor, modes, title, pen), drawn at the
// connection's size.
//
// The PTY reader parses the output itself once it has relayed it
// (afterOutput), straight from its read buffer, which output only lends
// the greeting: no copy, and no other goroutine to wake (a parser
// goroutine's hand-offs cost more CPU than they saved, and the rate did
// not gain). While output floods it parses in batches: a chunk read while
// the PTY still had more ready is copied aside, and parsed with the rest
// once a read drains the PTY or vtParseBatch waits. An idle session holds
// no goroutine and no read buffer for this.
//
// Whoever takes the terminal (the reader, the compaction timer, a
// restore's parse, or a method called under the core's lock) first parses
// everything given to output so far, the lent chunk included (copied, so
// that the reader may reuse its buffer); and whoever gives it up parses
// what came meanwhile. With the reader held off by the core's lock, what a
// method sees is exactly the output fanned out so far, so a snapshot plus
// the live output after it is exact. Output waiting unparsed is bounded by
// vtParseBatch plus a chunk, or vtParseAhead while someone else has the
// terminal (then the reader waits).
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
	// lent is the chunk the reader gave output and has not yet parsed,
	// in the reader's buffer: it comes after pending. Anyone else who
	// takes the terminal meanwhile copies it into pending.
	lent    []byte
	pending []byte // output not yet given to the emulator, copied
	spare   []byte // the last batch parsed, for reuse
	busy    bool   // term is in use
	stopped bool   // finish was called: no more compaction
	timer   sync.WaitGroup
	// parseBatch is how much output may wait unparsed while the PTY has
	// more ready, vtParseBatch; 0 parses every chunk as it comes
	// (Server.vtParseEachChunk, for benchmarks). Set before any output.
	parseBatch int
	idle       *time.Timer // compacts once the output has paused
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
	g := &vtGreeting{term: term, answer: func([]byte) {}, parseBatch: vtParseBatch}
	g.changed = sync.NewCond(&g.mu)
	g.idle = time.AfterFunc(time.Hour, g.compactIdle)
	g.idle.Stop()
	return g
}

func (g *vtGreeting) answerWith(answer func([]byte)) { g.answer = answer }

// output is given each chunk by the reader, under the core's lock; the
// reader's afterOutput follows, before the chunk's buffer is reused. While
// nobody else has the terminal the chunk is only lent; while someone does
// (the compaction timer, a restore's parse), it is copied, and past
// vtParseAhead waiting the reader waits for them, so memory stays bounded.
func (g *vtGreeting) output(p []byte) {
	g.mu.Lock()
	g.restored.quiet = false
	if !g.busy {
		g.lent = p
		g.mu.Unlock()
		return
	}
	for len(g.pending) >= vtParseAhead && g.busy {
		g.changed.Wait()
	}
	g.keepLocked(p)
	g.mu.Unlock()
}

// keepLocked appends a copy of p to the output waiting. The caller holds
// mu.
func (g *vtGreeting) keepLocked(p []byte) {
	if g.pending == nil && cap(g.spare) > 0 {
		g.pending, g.spare = g.spare[:0], nil
	}
	g.pending = append(g.pending, p...)
}

// takeLentLocked copies the lent chunk into pending, for whoever takes
// the terminal other than the reader. The caller holds mu.
func (g *vtGreeting) takeLentLocked() {
	if g.lent != nil {
		g.keepLocked(g.lent)
		g.lent = nil
	}
}

// afterOutput parses, on the reader's goroutine, the output it has just
// relayed, with what waits before it, unless someone else has the
// terminal (who parses it). more says the PTY may have more output ready:
// then the chunk is set aside to be parsed with the next, up to
// parseBatch.
func (g *vtGreeting) afterOutput(more bool) {
	g.mu.Lock()
	lent := g.lent
	g.lent = nil
	if g.busy || (more && len(g.pending)+len(lent) < g.parseBatch) {
		// Whoever has the terminal parses it when they give it up.
		g.keepLocked(lent)
		g.mu.Unlock()
		return
	}
	if len(g.pending) == 0 && len(lent) == 0 {
		g.mu.Unlock()
		return
	}
	g.busy = true
	batch := g.pending
	g.pending = nil
	g.restored.applyAnswering(g.term)
	g.mu.Unlock()
	if len(batch) > 0 {
		g.feed(batch)
	}
	if len(lent) > 0 {
		g.feed(lent)
	}
	g.mu.Lock()
	if batch != nil {
		g.spare = batch[:0]
	}
	g.releaseLocked()
	g.mu.Unlock()
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
	g.release()
}

// catchUp feeds waiting output to the emulator until none waits. The
// caller has the terminal.
func (g *vtGreeting) catchUp() {
	g.mu.Lock()
	g.catchUpLocked()
	g.mu.Unlock()
}

// catchUpLocked is catchUp for a caller that holds mu, which it holds
// again on return, with nothing waiting.
func (g *vtGreeting) catchUpLocked() {
	for {
		g.takeLentLocked()
		batch := g.pending
		g.pending = nil
		g.restored.applyAnswering(g.term)
		if len(batch) == 0 {
			return
		}
		g.changed.Broadcast()
		g.mu.Unlock()
		g.feed(batch)
		g.mu.Lock()
		g.spare = batch[:0]
	}
}

// feed gives p to the emulator, sends its answers to queries, and
// encodes the scrolled-off lines every vtCompactEvery. The caller has the
// terminal.
func (g *vtGreeting) feed(p []byte) {
	_, _ = g.term.Write(p)
	g.parsed += uint64(len(p))
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

// compactIdle runs on the idle timer: it encodes what is left unencoded
// and lets the gathering buffer go, unless the terminal is in use (whoever
// has it sets the timer again).
func (g *vtGreeting) compactIdle() {
	g.mu.Lock()
	g.idleSet = false
	if g.busy || g.stopped {
		g.mu.Unlock()
		return
	}
	g.busy = true
	if cap(g.spare) > vtSpareKept {
		g.spare = nil
	}
	g.timer.Add(1)
	defer g.timer.Done()
	g.mu.Unlock()
	g.term.Compact()
	g.lastCompact = time.Now()
	// Output that came meanwhile waited for this.
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
	g.catchUpLocked()
	g.mu.Unlock()
}

// release parses the output that came while the caller had the terminal
// and gives it up, setting the idle timer if lines wait to be encoded or
// a large gathering buffer is kept.
func (g *vtGreeting) release() {
	g.mu.Lock()
	g.releaseLocked()
	g.mu.Unlock()
}

// releaseLocked is release for a caller that holds mu.
func (g *vtGreeting) releaseLocked() {
	g.catchUpLocked()
	g.busy = false
	if !g.stopped && !g.idleSet && (g.term.HeldLines() > 0 || cap(g.spare) > vtSpareKept) {
		g.idleSet = true
		g.idle.Reset(vtCompactIdle)
	}
	g.changed.Broadcast()
}

// finish stops the compaction timer and waits for it; the reader is done,
// so no more output comes. Output left unparsed is parsed by whoever next
// takes the terminal.
func (g *vtGreeting) finish() {
	g.mu.Lock()
	g.stopped = true
	g.idle.Stop()
	g.mu.Unlock()
	g.timer.Wait()
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
	if s.vtParseEachChunk {
		g.parseBatch = 0
	}
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
