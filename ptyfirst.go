package reconnectingpty

import "github.com/reconnectingpty/reconnectingpty/internal/resume"

// firstBytes is what a joining connection is sent before live output: the
// greeting, or for a resuming one a header and then the output it missed
// (delta) or the greeting as a redraw (reset). The greeting is drawn into
// a buffer the server lends (greetBuf): lent is the greeting, to give back
// once it is written, or nil when there is none. ps.mu is held.
func (ps *ptySession) firstBytes(req attachRequest) (first [][]byte, lent []byte) {
	buf := ps.srv.greetBuf()
	first, lent = ps.drawFirst(req, buf)
	if lent == nil {
		// Not drawn into: a delta, or an empty greeting.
		ps.srv.giveBackGreetBuf(buf)
	}
	return first, lent
}

// drawFirst is firstBytes, drawing the greeting into buf.
func (ps *ptySession) drawFirst(req attachRequest, buf []byte) (first [][]byte, lent []byte) {
	if !req.resume {
		g := ps.greeting.greet(buf, &ps.ring)
		ps.srv.metrics.replayBytes.Add(float64(len(g)))
		if len(g) == 0 {
			return nil, nil
		}
		return [][]byte{g}, g
	}
	written := ps.ring.written()
	// A client resuming from 0 has nothing. A greeting that redraws the
	// exact state sends that rather than all the output from the start:
	// replayed output repeats the program's terminal queries, and the new
	// terminal would answer them long after the program asked (vim reads
	// those answers as keys and moves its cursor on every page reload).
	_, exact := ps.greeting.(exactRedraw)
	fresh := exact && req.offset == 0 && written > 0
	// Nor is a query the server answered while nobody was attached: its
	// terminal would answer again. Such a client is redrawn instead.
	if a, ok := ps.greeting.(answerer); ok && req.offset < a.answeredThrough() {
		fresh = true
	}
	// A delta longer than a connection may queue would only be cut off:
	// that client is as far behind as a slow consumer, and is redrawn.
	if !fresh && req.offset <= written && written-req.offset <= uint64(req.queueSize) {
		if delta, ok := ps.ring.since(req.offset); ok {
			ps.srv.metrics.replayBytes.Add(float64(len(delta)))
			h := resume.AppendHeader(nil, resume.Header{Mode: resume.Delta, Offset: req.offset})
			if len(delta) == 0 {
				return [][]byte{h}, nil
			}
			return [][]byte{h, delta}, nil
		}
	}
	redraw := ps.greeting.greet(buf, &ps.ring)
	ps.srv.metrics.replayBytes.Add(float64(len(redraw)))
	h := resume.AppendHeader(nil, resume.Header{Mode: resume.Reset, Offset: written, Len: uint64(len(redraw))})
	if len(redraw) == 0 {
		return [][]byte{h}, nil
	}
	return [][]byte{h, redraw}, redraw
}

// A server keeps at most maxSpareGreetBufs greeting buffers for reuse,
// of at most maxLentGreeting bytes each: a larger one (a huge screen), or
// one more (many reattaches at once), is left to the collector.
const (
	maxSpareGreetBufs = 2
	maxLentGreeting   = 512 << 10
)

// greetBuf lends an empty buffer for a greeting. Greetings are large (a vt
// snapshot with its scrollback, a buffered replay: tens of KiB) and live
// only until written, so the server reuses their buffers: a reattach then
// allocates next to nothing, which spares it the allocation's cost and
// the garbage collections that many reattaches' garbage would start (one
// that starts during a reattach delays it by milliseconds). The buffers
// are the server's, not a session's: an idle session holds none. (Not a
// sync.Pool: a collection empties that, and a collection is what a
// reattach should not have to wait for.)
func (s *Server) greetBuf() []byte {
	s.greetMu.Lock()
	defer s.greetMu.Unlock()
	n := len(s.greetBufs)
	if n == 0 {
		return nil
	}
	b := s.greetBufs[n-1]
	s.greetBufs[n-1] = nil
	s.greetBufs = s.greetBufs[:n-1]
	return b
}

// giveBackGreetBuf returns a greeting's buffer once nothing refers to it:
// g must start where its buffer does, as a greeting drawn into a buffer
// from greetBuf does.
func (s *Server) giveBackGreetBuf(g []byte) {
	if cap(g) == 0 || cap(g) > maxLentGreeting {
		return
	}
	s.greetMu.Lock()
	defer s.greetMu.Unlock()
	if len(s.greetBufs) < maxSpareGreetBufs {
		s.greetBufs = append(s.greetBufs, g[:0])
	}
}
