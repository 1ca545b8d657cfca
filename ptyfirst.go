package reconnectingpty

import "github.com/reconnectingpty/reconnectingpty/internal/resume"

// firstBytes is what a joining connection is sent before live output: the
// greeting, or for a resuming one a header and then the output it missed
// (delta) or the greeting as a redraw (reset). ps.mu is held.
func (ps *ptySession) firstBytes(req attachRequest) [][]byte {
	if !req.resume {
		g := ps.greeting.greet(nil, &ps.ring)
		ps.srv.metrics.replayBytes.Add(float64(len(g)))
		if len(g) == 0 {
			return nil
		}
		return [][]byte{g}
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
				return [][]byte{h}
			}
			return [][]byte{h, delta}
		}
	}
	redraw := ps.greeting.greet(nil, &ps.ring)
	ps.srv.metrics.replayBytes.Add(float64(len(redraw)))
	h := resume.AppendHeader(nil, resume.Header{Mode: resume.Reset, Offset: written, Len: uint64(len(redraw))})
	if len(redraw) == 0 {
		return [][]byte{h}
	}
	return [][]byte{h, redraw}
}
