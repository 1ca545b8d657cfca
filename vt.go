package reconnectingpty

import (
	"os/exec"
	"sync"

	"cdr.dev/slog/v3"

	"github.com/reconnectingpty/reconnectingpty/internal/vt"
)

// vtParseAhead bounds how far the reader may run ahead of the parser: the
// output the greeting holds unparsed. Past it the reader waits, so a
// program that outruns the parser is paced by it and memory stays bounded.
const vtParseAhead = 256 << 10

// vtGreeting is the vt backend's greeting: every output byte and resize is
// fed, in order, to an in-process terminal emulator, and a joining
// connection is sent a snapshot of that terminal's state (screen,
// scrollback, alternate screen, cursor, modes, title, pen), drawn at the
// connection's size.
//
// The emulator parses on a goroutine of its own, started when output
// arrives and gone once it has caught up, so that the PTY reader drains the
// terminal at buffered's pace instead of waiting for the parser. Every
// other method is called under the core's lock and first waits for the
// parser to catch up: with the reader held off by that lock, what the
// method sees is exactly the output fanned out so far, so a snapshot plus
// the live output after it is still exact.
type vtGreeting struct {
	// term is the parser's while it runs, and otherwise the core's, whose
	// lock its callers hold.
	term *vt.Terminal
	// answer writes the emulator's answers to queries to the program.
	answer func([]byte)

	mu      sync.Mutex
	changed *sync.Cond // busy or len(pending) changed
	pending []byte     // output not yet given to the parser
	spare   []byte     // the parser's last batch, for reuse
	busy    bool       // the parser is running
	parser  sync.WaitGroup
	replies []byte // the parser's
	// parsed counts the output bytes parsed, and answered is that count
	// at the end of the last batch that had a query the emulator answered
	// (the parser's, or its callers' once settled): output up to there
	// holds a query that has its answer already.
	parsed, answered uint64
}

func newVTGreeting(height, width uint16, scrollback int) *vtGreeting {
	term := vt.New(int(height), int(width), vt.Options{Scrollback: scrollback})
	// Nobody is attached yet: a program that asks the terminal something
	// on start (DA, cursor position) gets the answer xterm would give
	// rather than waiting for a client that is not there.
	term.SetAnswerQueries(true)
	g := &vtGreeting{term: term, answer: func([]byte) {}}
	g.changed = sync.NewCond(&g.mu)
	return g
}

func (g *vtGreeting) answerWith(answer func([]byte)) { g.answer = answer }

func (g *vtGreeting) output(p []byte) {
	g.mu.Lock()
	for len(g.pending) >= vtParseAhead {
		g.changed.Wait()
	}
	if g.pending == nil && cap(g.spare) > 0 {
		g.pending, g.spare = g.spare[:0], nil
	}
	g.pending = append(g.pending, p...)
	if !g.busy {
		g.busy = true
		g.parser.Add(1)
		go g.parse()
	}
	g.mu.Unlock()
}

// parse feeds pending output to the emulator until there is none.
func (g *vtGreeting) parse() {
	defer g.parser.Done()
	var batch []byte
	for {
		g.mu.Lock()
		if batch != nil {
			g.spare = batch[:0]
		}
		batch, g.pending = g.pending, nil
		if len(batch) == 0 {
			g.busy = false
			// An idle session keeps no more than a keystroke's echo
			// needs; a burst allocates afresh.
			if cap(g.spare) > 4<<10 {
				g.spare = nil
			}
			g.changed.Broadcast()
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
	}
}

// settle waits until the emulator has parsed all output given so far. The
// core's lock, held by every caller, keeps more from arriving meanwhile.
func (g *vtGreeting) settle() {
	g.mu.Lock()
	for g.busy {
		g.changed.Wait()
	}
	g.mu.Unlock()
	g.parser.Wait()
}

func (g *vtGreeting) finish() { g.settle() }

func (g *vtGreeting) resized(height, width uint16) {
	g.settle()
	g.term.Resize(int(height), int(width))
}

// attached hands query answering to the clients while any is attached:
// their terminals answer, and two answers would confuse the program.
func (g *vtGreeting) attached(n int) {
	g.settle()
	g.term.SetAnswerQueries(n == 0)
}

func (g *vtGreeting) greet(dst []byte, _ *replayRing) []byte {
	g.settle()
	return g.term.AppendSnapshot(dst)
}

// exactRedraw: a snapshot is the exact state, so a client resuming from
// nothing gets it rather than the raw output since the start.
func (*vtGreeting) exactRedraw() {}

// answeredThrough is the output offset up to which a query the emulator
// answered may lie: a client resuming from before it must not get that
// output again, or its terminal would answer the query a second time and
// the program read the answer as typed keys.
func (g *vtGreeting) answeredThrough() uint64 {
	g.settle()
	return g.answered
}

// title is the window title the program last set.
func (g *vtGreeting) title() string {
	g.settle()
	return g.term.Title()
}

// startVT starts a vt session: the command on a PTY of its own, the shared
// core's fan-out and resume ring, and a terminal emulator that greets every
// attaching connection with the program's current screen.
func startVT(s *Server, cmd *exec.Cmd, height, width uint16, logger slog.Logger, onDone func()) (*ptySession, error) {
	return startPTYSession(s, BackendVT, newVTGreeting(height, width, s.cfg.ScrollbackLines), cmd, height, width, logger, onDone)
}
