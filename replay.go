package reconnectingpty

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

const (
	// replayStep is the granularity a small replayRing grows by, so that
	// a session that wrote a few KiB holds little more than that.
	replayStep = 1 << 10
	// replayStepUpTo is the size up to which it grows in steps; beyond
	// it grows by half again, so that growing to max copies little.
	replayStepUpTo = 64 << 10
)

// replayRing keeps the last bytes of a session's output, up to max, and
// knows where they sit in the whole output: offset N is the N-th byte the
// process ever wrote. It serves both the replay a buffered connection gets
// on attach and the delta a resuming connection gets.
//
// It starts empty and grows with the output (in 1 KiB steps while small,
// then by half again each time) up to max, so that a session that writes
// little costs little; once full it wraps.
type replayRing struct {
	max   int
	buf   []byte // growing: the held bytes, oldest first; full: len(buf) == max
	full  bool
	pos   int    // when full: where the next byte goes, and the oldest byte
	total uint64 // bytes ever written
}

func newReplayRing(max int) replayRing { return replayRing{max: max} }

// written is the offset of the next byte: how many bytes were ever written.
func (r *replayRing) written() uint64 { return r.total }

// held is how many of the last bytes the ring holds.
func (r *replayRing) held() int { return len(r.buf) }

func (r *replayRing) write(p []byte) {
	r.total += uint64(len(p))
	if r.max == 0 {
		return
	}
	if !r.full {
		if len(r.buf)+len(p) <= r.max {
			if need := len(r.buf) + len(p); need > cap(r.buf) {
				grown := make([]byte, len(r.buf), min(r.max, growTo(cap(r.buf), need)))
				copy(grown, r.buf)
				r.buf = grown
			}
			r.buf = append(r.buf, p...)
			return
		}
		// It fills up: from now on it is a ring of exactly max bytes.
		whole := make([]byte, r.max)
		if len(p) < r.max {
			keep := r.max - len(p)
			copy(whole, r.buf[len(r.buf)-keep:])
			copy(whole[keep:], p)
		} else {
			copy(whole, p[len(p)-r.max:])
		}
		r.buf, r.full, r.pos = whole, true, 0
		return
	}
	if len(p) >= r.max {
		copy(r.buf, p[len(p)-r.max:])
		r.pos = 0
		return
	}
	n := copy(r.buf[r.pos:], p)
	copy(r.buf, p[n:])
	r.pos = (r.pos + len(p)) % r.max
}

// growTo is the capacity a growing ring of capacity c takes to hold need.
func growTo(c, need int) int {
	if need <= replayStepUpTo {
		return (need + replayStep - 1) / replayStep * replayStep
	}
	return max(need, c+c/2)
}

// appendLast appends the last n held bytes (n <= held) to dst, oldest first.
func (r *replayRing) appendLast(dst []byte, n int) []byte {
	if !r.full {
		return append(dst, r.buf[len(r.buf)-n:]...)
	}
	start := (r.pos + r.max - n) % r.max
	if start+n <= r.max {
		return append(dst, r.buf[start:start+n]...)
	}
	dst = append(dst, r.buf[start:]...)
	return append(dst, r.buf[:n-(r.max-start)]...)
}

// since returns a copy of the output from offset on, and false when the
// ring no longer holds all of it or offset is beyond what was written.
func (r *replayRing) since(offset uint64) ([]byte, bool) {
	if offset > r.total || r.total-offset > uint64(len(r.buf)) {
		return nil, false
	}
	n := int(r.total - offset)
	return r.appendLast(make([]byte, 0, n), n), true
}

// replay returns a copy of the last limit bytes of output, cut so that it
// starts where a terminal can safely start reading it. Output that was
// never cut (the session's whole output so far) is returned whole.
func (r *replayRing) replay(limit int) []byte {
	n := min(limit, len(r.buf))
	out := r.appendLast(make([]byte, 0, n), n)
	if r.total <= uint64(n) {
		return out
	}
	return out[safeStart(out):]
}

// appendReplay appends what replay returns to dst, without a copy of its
// own.
func (r *replayRing) appendReplay(dst []byte, limit int) []byte {
	n := min(limit, len(r.buf))
	start := len(dst)
	dst = r.appendLast(slices.Grow(dst, n), n)
	if r.total <= uint64(n) {
		return dst
	}
	if cut := safeStart(dst[start:]); cut > 0 {
		dst = append(dst[:start], dst[start+cut:]...)
	}
	return dst
}

// safeStart finds where to begin a replay whose first bytes were cut off:
// not inside a UTF-8 sequence nor an escape sequence. A line start is the
// best place; failing that, the start of an escape sequence; failing
// that, the first character boundary.
func safeStart(b []byte) int {
	const window = 8 << 10
	head := b[:min(len(b), window)]
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		return i + 1
	}
	if i := bytes.IndexByte(head, 0x1b); i >= 0 {
		return i
	}
	for i := 0; i < len(b) && i < utf8.UTFMax; i++ {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return 0
}
