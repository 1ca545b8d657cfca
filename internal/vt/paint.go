package vt

import "encoding/binary"

// Painting the screens' lines for a snapshot: each line is printed as the
// program printed it, so soft wraps happen again in the receiver.

// lineSource yields the lines to paint in order.
type lineSource interface {
	count() int
	// get returns line i, valid until the next call; peek likewise, from
	// storage of its own.
	get(i int) *line
	peek(i int) *line
	wrapped(i int) bool
}

type normalLines struct {
	t         *Terminal
	tmp, tmp2 line
}

func (n *normalLines) peek(i int) *line {
	if i < n.t.sb.len() {
		n.t.sb.decode(i, &n.tmp2)
		return &n.tmp2
	}
	return n.t.normal.lines[i-n.t.sb.len()]
}

func (n *normalLines) count() int { return n.t.sb.len() + len(n.t.normal.lines) }

func (n *normalLines) get(i int) *line {
	if i < n.t.sb.len() {
		n.t.sb.decode(i, &n.tmp)
		return &n.tmp
	}
	return n.t.normal.lines[i-n.t.sb.len()]
}

func (n *normalLines) wrapped(i int) bool {
	if i < n.t.sb.len() {
		return n.t.sb.at(i).wrapped
	}
	return n.t.normal.lines[i-n.t.sb.len()].wrapped
}

// writeNormal paints the scrollback and the normal screen top to bottom
// with CR LF between lines that are not soft-wrapped, so the lines scroll
// into the receiver's scrollback as they did here.
func (s *snapshotter) writeNormal() {
	t := s.t
	src := &normalLines{t: t}
	total := src.count()
	// Only the lines up to the last non-blank one need painting, unless
	// there is scrollback: then every screen row is written so the right
	// number scroll away.
	if total > 0 && src.wrapped(0) && t.sb.len() != t.sb.max {
		s.lose("oldest line marked wrapped")
	}
	if total > 0 && src.wrapped(0) && t.sb.len() == t.sb.max {
		// The oldest line continues one that was dropped: paint a filler
		// line first that wraps into it and then scrolls away (so every
		// row is painted).
		for x := 0; x < t.cols; x++ {
			s.out = append(s.out, ' ')
		}
		s.filler = 1
	}
	// Only the lines up to the last non-blank one need painting, unless
	// lines must scroll away: then every screen row is written.
	last := total - 1
	if t.sb.len() == 0 && s.filler == 0 {
		for last >= 0 && isBlankLine(src.get(last)) && !src.wrapped(last) && !nextWrapped(src, last, total) {
			last--
		}
	}
	s.paint(src, 0, last, false)
}

// writeAlt paints the alternate screen.
func (s *snapshotter) writeAlt() {
	s.moveTo(0, 0)
	src := &sliceLines{lines: s.t.alt.lines}
	if len(src.lines) > 0 && src.lines[0].wrapped {
		s.lose("top line of the alternate screen marked wrapped")
	}
	last := len(src.lines) - 1
	for last >= 0 && isBlankLine(src.lines[last]) && !src.lines[last].wrapped && !nextWrapped(src, last, len(src.lines)) {
		last--
	}
	s.paint(src, 0, last, true)
}

type sliceLines struct{ lines []*line }

func (l *sliceLines) count() int         { return len(l.lines) }
func (l *sliceLines) get(i int) *line    { return l.lines[i] }
func (l *sliceLines) peek(i int) *line   { return l.lines[i] }
func (l *sliceLines) wrapped(i int) bool { return l.lines[i].wrapped }

func nextWrapped(src lineSource, i, total int) bool {
	return i+1 < total && src.wrapped(i+1)
}

func isBlankLine(l *line) bool {
	for i := range l.cells[:l.used] {
		if l.cells[i] != (cell{}) {
			return false
		}
	}
	return true
}

// emptyRun is a run of empty cells painted with stand-ins, to be erased.
type emptyRun struct {
	x, n int
	bg   color
}

// paint writes lines [from, to] of src. Every line starts at column 0 of
// a fresh (blank, default) row: a line feed (normal screen, so lines
// scroll into the scrollback) or a cursor move (alternate screen). A line
// that continues the previous one is reached by printing past the end of
// the previous line, as the program did.
func (s *snapshotter) paint(src lineSource, from, to int, alt bool) {
	t := s.t
	var prevRuns []emptyRun
	for i := from; i <= to; i++ {
		wrapNext := nextWrapped(src, i, src.count())
		if !alt && !wrapNext && !src.wrapped(i) && s.paintCompact(i) {
			if i < to {
				s.sgr(attrs{})
				s.out = append(s.out, "\r\n"...)
			}
			continue
		}
		l := src.get(i)
		var runs []emptyRun
		if len(l.cells) > t.cols && !isBlankFrom(l, t.cols) {
			s.lose("line longer than the screen is wide")
		}
		end := min(len(l.cells), t.cols)
		if !wrapNext {
			end = min(end, l.used)
			for end > 0 && l.cells[end-1] == (cell{}) {
				end--
			}
		}
		if l.wrapped && end == 0 {
			end = 1
		}
		fix := prevRuns
		prevRuns = nil
		wrappedIn := l.wrapped && (i > from || s.filler == 1)
		if !alt && !l.wrapped {
			s.saveWhilePainting(i)
		}
		for x := 0; x < end; {
			c := &l.cells[x]
			next := x + max(int(c.width()), 1)
			if c.ch == 0 && c.width() != 1 {
				s.lose("empty cell of width other than 1")
			}
			if c.ch == 0 {
				k := x + 1
				for k < end && l.cells[k].ch == 0 && l.cells[k].attrs() == c.attrs() && l.cells[k].wx == 0 {
					k++
				}
				next = k
				switch {
				case x == 0 && l.wrapped:
					// The wrap into this line needs a printed character.
					next = 1
					s.standIns(&runs, x, 1, c.attrs())
				case k == end && wrapNext && k-x == 1 && s.wideWrapsNext(src, i, c.attrs()):
					// A wide character that did not fit left this cell: it
					// will again, printed with the same pen.
				case k == end && wrapNext:
					// So do the cells up to the wrap out of it.
					s.standIns(&runs, x, k-x, c.attrs())
				case c.attrs() == attrs{}:
					if k < end {
						s.csi(k - x)
						s.out = append(s.out, 'C')
					}
				default:
					if c.attrs() != (attrs{bg: c.bg}) {
						s.lose("empty cell with foreground attributes")
					}
					s.sgr(attrs{bg: c.bg & colorBits})
					s.csi(k - x)
					s.out = append(s.out, 'X')
					if k < end {
						s.csi(k - x)
						s.out = append(s.out, 'C')
					}
				}
			} else {
				if x == 0 && l.wrapped && c.width() == 0 {
					s.lose("zero-width character opening a wrapped line")
				}
				if c.width() == 2 && (x+1 >= len(l.cells) || l.cells[x+1].ch != 0 || l.cells[x+1].width() != 0) {
					s.lose("wide character without its right half")
				}
				if int(c.width()) != runeWidth(firstRune(l, x)) {
					s.lose("character whose width printing would not give")
				}
				if s.onlyByDECRC(c.attrs()) {
					s.extendedByDECRC(c.attrs(), alt, x == 0 && l.wrapped, i)
				} else {
					s.pen(c.attrs())
				}
				if c.width() == 0 {
					// A lone zero-width character: end any join first.
					s.out = append(s.out, "\x1b\\"...)
				}
				if c.ch == combinedRune {
					s.out = append(s.out, l.combined[x]...)
				} else {
					s.out = appendRune(s.out, c.ch)
				}
			}
			x = next
			if wrappedIn && x < t.cols {
				// The wrap into this line happened: erase the stand-ins of
				// the line above, and the rest of this line, which a scroll
				// may have filled with the pen's background.
				if len(fix) > 0 {
					s.out = append(s.out, "\x1b[A"...)
					s.eraseRuns(fix)
					s.out = append(s.out, "\x1b[B"...)
					s.csi(x + 1)
					s.out = append(s.out, 'G')
				}
				s.sgr(attrs{})
				s.out = append(s.out, "\x1b[K"...)
				wrappedIn = false
			}
		}
		if wrappedIn && len(fix) > 0 {
			s.lose("no room to erase the stand-ins above a wrapped line")
		}
		if wrapNext {
			prevRuns = runs
			continue
		}
		s.eraseRuns(runs)
		if i < to {
			if alt {
				s.moveTo(i+1, 0)
			} else {
				s.sgr(attrs{})
				s.out = append(s.out, "\r\n"...)
			}
		}
	}
}

// wideWrapsNext reports whether line i+1 starts with a wide character
// printed with attributes a.
func (s *snapshotter) wideWrapsNext(src lineSource, i int, a attrs) bool {
	n := src.peek(i + 1)
	return len(n.cells) > 0 && n.cells[0].width() == 2 && n.cells[0].ch != 0 && n.cells[0].attrs() == a
}

// paintCompact paints scrollback line i straight from its stored form when
// it is plain text runs (the common case), and reports whether it did.
func (s *snapshotter) paintCompact(i int) bool {
	t := s.t
	if i >= t.sb.len() {
		return false
	}
	s.saveWhilePainting(i)
	data := t.sb.at(i).data
	cols, n := binary.Uvarint(data)
	if int(cols) > t.cols {
		return false
	}
	data = data[n:]
	// Check first: a line with anything but text falls back whole.
	for d := data; len(d) > 0; {
		run := int(binary.LittleEndian.Uint16(d[attrLen:]))
		if binary.LittleEndian.Uint16(d[8:])&attrUnderline != 0 && d[10] == 0 {
			return false
		}
		d = d[attrLen+2:]
		if !printableASCII(d[:run]) {
			return false
		}
		d = d[run:]
	}
	for len(data) > 0 {
		var a attrs
		a.fg = color(binary.LittleEndian.Uint32(data))
		a.bg = color(binary.LittleEndian.Uint32(data[4:]))
		a.flags = binary.LittleEndian.Uint16(data[8:])
		a.ul = data[10]
		run := int(binary.LittleEndian.Uint16(data[attrLen:]))
		data = data[attrLen+2:]
		s.pen(a)
		s.out = append(s.out, data[:run]...)
		data = data[run:]
	}
	return true
}

// printableASCII reports whether every byte of p is printable ASCII (0x20
// to 0x7e). It looks at eight bytes at a time: the check of every
// scrollback line's text was a third of a snapshot's time byte by byte.
func printableASCII(p []byte) bool {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	for len(p) >= 8 {
		w := binary.LittleEndian.Uint64(p)
		// With no byte at 0x80 or above, adding to each byte cannot
		// carry into the next: +0x60 sets a byte's high bit when it is
		// 0x20 or more, +0x01 when it is 0x7f.
		if w&high != 0 || (w+0x60*ones)&high != high || (w+ones)&high != 0 {
			return false
		}
		p = p[8:]
	}
	for _, c := range p {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// firstRune is the first code point of cell x's text.
func firstRune(l *line, x int) rune {
	if c := &l.cells[x]; c.ch != combinedRune {
		return c.ch
	}
	for _, r := range l.combined[x] {
		return r
	}
	return 0
}

func isBlankFrom(l *line, x int) bool {
	end := min(l.used, len(l.cells))
	if x >= end {
		return true
	}
	for i := range l.cells[x:end] {
		if l.cells[x+i] != (cell{}) {
			return false
		}
	}
	return true
}

func (s *snapshotter) standIns(runs *[]emptyRun, x, n int, a attrs) {
	bg := a.bg
	if a != (attrs{bg: bg}) {
		s.lose("empty cell with foreground attributes")
	}
	s.pen(attrs{})
	for j := 0; j < n; j++ {
		s.out = append(s.out, ' ')
	}
	*runs = append(*runs, emptyRun{x, n, bg})
}

// eraseRuns erases stand-ins on the cursor's row.
func (s *snapshotter) eraseRuns(runs []emptyRun) {
	for _, r := range runs {
		s.sgr(attrs{bg: r.bg & colorBits})
		s.csi(r.x + 1)
		s.out = append(s.out, 'G')
		s.csi(r.n)
		s.out = append(s.out, 'X')
	}
}
