package vt

import (
	"encoding/binary"
	"unicode/utf8"
)

// scrollback keeps the lines above the normal screen compactly: each line
// is one byte slice of attribute runs and text (an 80-column line of plain
// text takes about 100 bytes instead of 1,280 as cells). It is a ring; an
// evicted line's slice is reused for the next, so a full scrollback takes
// new lines without allocating.
//
// The newest lines wait as they left the screen, unencoded (raw), until
// something reads the scrollback or the terminal is compacted (Compact):
// during a flood most lines are pushed out of a full scrollback before
// then, and are never encoded at all. Logically the encoded lines come
// first (oldest), then the raw ones. A raw line that was plain (see
// line.plain) waits as its text and pen, and its cells go straight back to
// the screen as the new bottom line, still in the cache; any other waits
// as its cells.
type scrollback struct {
	lines []sbLine
	start int // index of the oldest line in lines
	n     int
	max   int
	// scratch holds a line being encoded, before it is copied to its slot.
	scratch []byte

	// raw is a ring of rawN lines from rawHead, oldest first; nil while
	// there are none. Its free slots keep their text buffers for reuse.
	raw     []rawLine
	rawHead int
	rawN    int
	// free holds the cells of lines encoded since the last compaction,
	// for push to reuse while lines keep arriving: a flood then allocates
	// no line after each compaction. A compaction that finds no line
	// pushed since the one before lets them go, and the raw ring with them.
	free   []*line
	pushed bool // a line was pushed since the last compaction
}

// rawLine is a line waiting unencoded: its cells, or for a plain line
// (cells nil) its text in attributes pen on a row of cols cells.
type rawLine struct {
	cells   *line
	text    []byte
	pen     attrs
	cols    int
	wrapped bool
}

// rawCellBudget bounds the cells raw lines may hold: the whole scrollback
// may wait raw when it fits (1,000 lines up to 262 columns); a wider one is
// encoded as lines arrive, since lines would be encoded before eviction
// anyway.
const rawCellBudget = 1 << 18

type sbLine struct {
	data    []byte
	wrapped bool
}

func (s *scrollback) reset(max int) {
	s.lines, s.start, s.n, s.max = nil, 0, 0, max
	s.raw, s.rawHead, s.rawN = nil, 0, 0
	s.free, s.pushed = nil, false
}

// len counts the lines, encoded or not; it encodes nothing.
func (s *scrollback) len() int { return s.n + s.rawN }

// pending reports how many lines wait unencoded.
func (s *scrollback) pending() int { return s.rawN }

// held reports how many lines' storage it holds beyond the encoded lines:
// the raw ring's slots (lines waiting unencoded, or text buffers kept for
// the next) and the cells kept for reuse.
func (s *scrollback) held() int { return len(s.raw) + len(s.free) }

func (s *scrollback) at(i int) *sbLine {
	s.encodeRaw()
	return s.encodedAt(i)
}

func (s *scrollback) encodedAt(i int) *sbLine { return &s.lines[(s.start+i)%len(s.lines)] }

// push appends l, which leaves the screen, as the newest line, evicting the
// oldest when full. It returns the line the screen uses in l's place: l
// itself when encoded at once or kept as its text, or a spare (an evicted
// raw line's cells, or new ones) when l's cells wait raw.
func (s *scrollback) push(l *line) *line {
	if s.max == 0 {
		return l
	}
	if s.max*len(l.cells) > rawCellBudget {
		s.encodeRaw()
		if l.plain {
			s.scratch = encodePlain(s.scratch[:0], len(l.cells), l.pen, l.chars[:l.used])
			s.store(s.scratch, l.wrapped)
		} else {
			s.encode(l)
		}
		return l
	}
	s.pushed = true
	var r *rawLine
	if s.n+s.rawN == s.max && s.n == 0 {
		// The oldest raw line's slot takes l: the ring turns by one
		// without a division.
		r = &s.raw[s.rawHead]
		if s.rawHead++; s.rawHead == len(s.raw) {
			s.rawHead = 0
		}
	} else {
		if s.n+s.rawN == s.max {
			s.dropOldestEncoded()
		}
		if s.rawN == len(s.raw) {
			s.growRaw()
		}
		i := s.rawHead + s.rawN
		if i >= len(s.raw) {
			i -= len(s.raw)
		}
		r = &s.raw[i]
		s.rawN++
	}
	evicted := r.cells
	r.wrapped = l.wrapped
	if l.plain {
		if checkPlain {
			checkPlainLine(l)
		}
		// The slot takes l's text and gives l its buffer, kept from
		// the line it held before, for the next; a slot with none big
		// enough gets one (once: slots keep their buffers).
		r.cells = nil
		if cap(r.text) >= len(l.chars) {
			r.text, l.chars = l.chars[:l.used], r.text[:cap(r.text)]
		} else {
			r.text = append(make([]byte, 0, len(l.chars)), l.chars[:l.used]...)
		}
		r.pen, r.cols = l.pen, len(l.cells)
		if evicted != nil {
			s.free = append(s.free, evicted)
		}
		return l
	}
	r.cells = l
	if evicted != nil {
		return evicted
	}
	if k := len(s.free); k > 0 {
		spare := s.free[k-1]
		s.free[k-1] = nil
		s.free = s.free[:k-1]
		return spare
	}
	return &line{cells: make([]cell, len(l.cells))}
}

// growRaw enlarges the raw ring, its oldest line first again; every slot
// keeps its text buffer.
func (s *scrollback) growRaw() {
	grown := make([]rawLine, min(s.max, max(8, 2*len(s.raw))))
	for i := range s.raw {
		grown[i] = s.raw[(s.rawHead+i)%len(s.raw)]
	}
	s.raw, s.rawHead = grown, 0
}

// dropOldestEncoded evicts the oldest encoded line, keeping its slice.
func (s *scrollback) dropOldestEncoded() {
	s.encodedAt(0).data = s.encodedAt(0).data[:0]
	s.start = (s.start + 1) % len(s.lines)
	s.n--
}

// compact encodes the raw lines and, unless lines are still arriving (one
// was pushed since the last compaction), lets every line's cells and text
// buffers go, and reports that they were let go.
func (s *scrollback) compact() (idle bool) {
	s.encodeRaw()
	idle = !s.pushed
	if idle {
		clear(s.free)
		s.free, s.raw, s.rawHead = nil, nil, 0
	}
	s.pushed = false
	return idle
}

// encodeRaw encodes the raw lines, oldest first, keeping their cells in
// free and their text buffers in their slots.
func (s *scrollback) encodeRaw() {
	for ; s.rawN > 0; s.rawN-- {
		r := &s.raw[s.rawHead]
		if r.cells != nil {
			s.encode(r.cells)
			s.free = append(s.free, r.cells)
			r.cells = nil
		} else {
			s.scratch = encodePlain(s.scratch[:0], r.cols, r.pen, r.text)
			s.store(s.scratch, r.wrapped)
		}
		s.rawHead = (s.rawHead + 1) % len(s.raw)
	}
	s.rawHead = 0
}

// pushEncoded appends l, encoded at once, as the newest line, evicting the
// oldest when full; l stays the caller's.
func (s *scrollback) pushEncoded(l *line) {
	if s.max == 0 {
		return
	}
	s.encodeRaw()
	s.encode(l)
}

// encode appends l's encoding as the newest encoded line, evicting the
// oldest when full.
func (s *scrollback) encode(l *line) {
	s.scratch = encodeLine(s.scratch[:0], l)
	s.store(s.scratch, l.wrapped)
}

// store appends an encoded line (data is copied) as the newest encoded
// line, evicting the oldest when full.
func (s *scrollback) store(data []byte, wrapped bool) {
	var e *sbLine
	if s.n < s.max {
		if s.n == len(s.lines) {
			// Grow the ring, oldest line first again.
			if s.start != 0 {
				lin := make([]sbLine, s.n, s.n+1)
				for i := range lin {
					lin[i] = *s.encodedAt(i)
				}
				s.lines, s.start = lin, 0
			}
			s.lines = append(s.lines, sbLine{})
			s.lines = s.lines[:cap(s.lines)]
			if len(s.lines) > s.max {
				s.lines = s.lines[:s.max]
			}
		}
		e = s.encodedAt(s.n)
		s.n++
	} else {
		e = s.encodedAt(0)
		s.start = (s.start + 1) % len(s.lines)
	}
	if cap(e.data) < len(data) {
		// Headroom, so that a slot soon fits any line it gets and a full
		// scrollback stops allocating: powers of two for short lines
		// (plain text stays small), half as much again for long ones.
		c := 64
		for c < len(data) && c < 256 {
			c *= 2
		}
		if c < len(data) {
			c = (len(data)*3/2 + 63) &^ 63
		}
		e.data = make([]byte, 0, c)
	}
	e.data = append(e.data[:0], data...)
	e.wrapped = wrapped
}

// replace stores l as line i (0 the oldest).
func (s *scrollback) replace(i int, l *line) {
	e := s.at(i)
	e.data = encodeLine(e.data[:0], l)
	e.wrapped = l.wrapped
}

// popNewest removes the newest line and decodes it into l.
func (s *scrollback) popNewest(l *line) {
	s.encodeRaw()
	e := s.encodedAt(s.n - 1)
	decodeLine(l, e.data)
	l.wrapped = e.wrapped
	s.n--
}

// trimOldest drops the n oldest lines.
func (s *scrollback) trimOldest(n int) {
	s.encodeRaw()
	n = min(n, s.n)
	for i := 0; i < n; i++ {
		s.encodedAt(i).data = s.encodedAt(i).data[:0]
	}
	if len(s.lines) > 0 {
		s.start = (s.start + n) % len(s.lines)
	}
	s.n -= n
}

// setMax changes the capacity, keeping the newest lines.
func (s *scrollback) setMax(max int) {
	s.encodeRaw()
	if s.n > max {
		s.trimOldest(s.n - max)
	}
	old := make([]sbLine, s.n)
	for i := range old {
		old[i] = *s.encodedAt(i)
	}
	s.lines, s.start, s.max = old, 0, max
}

// decode decodes line i (0 the oldest) into l.
func (s *scrollback) decode(i int, l *line) {
	e := s.at(i)
	decodeLine(l, e.data)
	l.wrapped = e.wrapped
}

// Cell encoding tags; bytes 0x20..0x7e stand for themselves (a narrow
// ASCII character).
const (
	tagEmpty   = 0x00 // empty cell, width 1
	tagCovered = 0x01 // empty cell, width 0 (right half of a wide character)
	tagText    = 0x02 // width byte, length uvarint, UTF-8 text
	tagEmptyW  = 0x03 // empty cell with another width: width byte
)

const attrLen = 11

// encodeLine appends l's encoding: its length, then runs of cells sharing
// attributes (trailing empty default cells are left out). A run is the
// attributes, a 2-byte cell count and the cells.
func encodeLine(dst []byte, l *line) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(l.cells)))
	end := l.used
	for end > 0 && l.cells[end-1] == (cell{}) {
		end--
	}
	cells := l.cells[:end]
	dst = slicesGrow(dst, len(cells)+16)
	for i := 0; i < len(cells); {
		a := cells[i].attrs()
		hdr := len(dst)
		dst = append(appendAttrs(dst, a), 0, 0)
		// Plain ASCII in the run's attributes, the bulk of most output,
		// is copied in a tight loop; anything else takes the switch below.
		limit := min(len(cells)-i, 0xffff)
		dst = slicesGrow(dst, limit)
		out := dst[len(dst) : len(dst)+limit]
		k := 0
		for ; k < limit; k++ {
			c := &cells[i+k]
			if uint32(c.ch-0x20) >= 0x5f || c.wx != 0 || c.attrs() != a {
				break
			}
			out[k] = byte(c.ch)
		}
		dst = dst[:len(dst)+k]
		j := i + k
		for ; j < len(cells) && j-i < 0xffff; j++ {
			c := &cells[j]
			if c.attrs() != a {
				break
			}
			switch {
			case uint32(c.ch-0x20) < 0x5f && c.wx == 0:
				dst = append(dst, byte(c.ch))
			case c.ch == 0 && c.wx == 0:
				dst = append(dst, tagEmpty)
			case c.ch == 0 && c.wx == 1:
				dst = append(dst, tagCovered)
			case c.ch == 0:
				dst = append(dst, tagEmptyW, c.width())
			case c.ch != combinedRune:
				// One code point: its UTF-8 length fits the one-byte uvarint.
				dst = append(dst, tagText, c.width(), byte(utf8.RuneLen(c.ch)))
				dst = utf8.AppendRune(dst, c.ch)
			default:
				s := l.text(j)
				dst = append(dst, tagText, c.width())
				dst = binary.AppendUvarint(dst, uint64(len(s)))
				dst = append(dst, s...)
			}
		}
		binary.LittleEndian.PutUint16(dst[hdr+attrLen:], uint16(j-i))
		i = j
	}
	return dst
}

// encodePlain appends the encoding encodeLine gives a line of cols cells
// showing text (printable ASCII) in attributes pen from column 0.
func encodePlain(dst []byte, cols int, pen attrs, text []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(cols))
	for len(text) > 0 {
		run := text[:min(len(text), 0xffff)]
		text = text[len(run):]
		dst = appendAttrs(dst, pen)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(run)))
		dst = append(dst, run...)
	}
	return dst
}

// appendAttrs appends a run's attributes, attrLen bytes.
func appendAttrs(dst []byte, a attrs) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(a.fg))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(a.bg))
	dst = binary.LittleEndian.AppendUint16(dst, a.flags)
	return append(dst, a.ul)
}

// decodeLine makes l the line encoded in data.
func decodeLine(l *line, data []byte) {
	cols, n := binary.Uvarint(data)
	data = data[n:]
	if cap(l.cells) >= int(cols) {
		l.cells = l.cells[:cols]
	} else {
		l.cells = make([]cell, cols)
	}
	if l.combined != nil {
		clear(l.combined)
	}
	i := 0
	for len(data) > 0 {
		var a attrs
		a.fg = color(binary.LittleEndian.Uint32(data))
		a.bg = color(binary.LittleEndian.Uint32(data[4:]))
		a.flags = binary.LittleEndian.Uint16(data[8:])
		a.ul = data[10]
		run := binary.LittleEndian.Uint16(data[attrLen:])
		data = data[attrLen+2:]
		for ; run > 0; run-- {
			b := data[0]
			data = data[1:]
			c := &l.cells[i]
			c.put(0, a, 0)
			switch b {
			case tagEmpty:
			case tagCovered:
				c.wx = 0 ^ 1
			case tagEmptyW:
				c.wx = data[0] ^ 1
				data = data[1:]
			case tagText:
				c.wx = data[0] ^ 1
				sl, n := binary.Uvarint(data[1:])
				s := data[1+n : 1+n+int(sl)]
				data = data[1+n+int(sl):]
				if r, size := utf8.DecodeRune(s); size == len(s) {
					c.ch = r
				} else {
					c.ch = combinedRune
					if l.combined == nil {
						l.combined = make(map[int]string, 1)
					}
					l.combined[i] = string(s)
				}
			default:
				c.ch = rune(b)
			}
			i++
		}
	}
	l.used = i
	l.plain = false
	for ; i < int(cols); i++ {
		l.cells[i] = cell{}
	}
}

// pushUnbounded appends l even past max (a resize trims after); l stays
// the caller's.
func (s *scrollback) pushUnbounded(l *line) {
	s.encodeRaw()
	if s.n < s.max {
		s.encode(l)
		return
	}
	old := make([]sbLine, s.n, s.n+1)
	for i := range old {
		old[i] = *s.encodedAt(i)
	}
	s.lines, s.start = append(old, sbLine{}), 0
	e := &s.lines[s.n]
	s.n++
	e.data = encodeLine(nil, l)
	e.wrapped = l.wrapped
}

// slicesGrow makes room for n more bytes.
func slicesGrow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		return nb
	}
	return b
}
