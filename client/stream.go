package client

import "github.com/reconnectingpty/reconnectingpty/internal/resume"

// stream is what readLoop knows about the connection's output so far.
type stream struct {
	header bool   // the resume header may still be ahead
	held   []byte // the start of the output, while it may be a header
	replay bool   // the next output is an old server's replay
	redraw uint64 // bytes of a reset's redraw still to come
}

// take turns one read of output into the chunks for Read, keeping the
// resume offset: it strips the resume header, which may arrive split
// across reads, and counts the output that is not a redraw. last says
// that the connection ended, so that a header cannot complete any more.
func (c *Client) take(st *stream, p []byte, last bool) []chunk {
	var out []chunk
	if st.header {
		st.held = append(st.held, p...)
		h, n, status, err := resume.Parse(st.held)
		switch {
		case err != nil:
			// Not a header this client understands: take the server for
			// one without the extension, and stop asking.
			c.resume = false
			st.header = false
		case status == resume.NeedMore && !last:
			return nil
		case status == resume.Found:
			st.header, st.replay = false, false
			switch {
			case h.Mode == resume.Delta && h.Offset == c.offset:
				// Exactly where this client left off: nothing to report.
			case h.Mode == resume.Delta:
				// Not where it left off: what is shown is out of step.
				out = append(out, chunk{reset: true})
				c.offset = h.Offset
			default:
				out = append(out, chunk{reset: true})
				c.offset = h.Offset
				st.redraw = h.Len
			}
			st.held = st.held[n:]
		default:
			st.header = false // no header: a server without the extension
		}
		p, st.held = st.held, nil
	}
	if len(p) == 0 {
		return out
	}
	redraw := min(st.redraw, uint64(len(p)))
	st.redraw -= redraw
	c.offset += uint64(len(p)) - redraw
	data := append([]byte(nil), p...)
	if len(out) > 0 {
		out[len(out)-1].data = data
		return out
	}
	out = append(out, chunk{data: data, resumed: st.replay})
	st.replay = false
	return out
}
