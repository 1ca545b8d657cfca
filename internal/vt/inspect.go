package vt

// Inspection: what a client that mirrors the screen in a Terminal needs to
// draw over a real terminal fed the same bytes and to take the drawing back
// (predictive echo in examples/rpty): the cursor, the modes that change
// where printed text lands, and each cell as bytes that paint it again.

// Cursor returns the cursor's screen row and column, both from 0. The
// column is Size's cols while a character printed in the last column waits
// to wrap (the pending-wrap state, which no cursor movement can restore).
func (t *Terminal) Cursor() (row, col int) { return t.buf.y, t.buf.x }

// AltScreen reports whether the alternate screen is active.
func (t *Terminal) AltScreen() bool { return t.altActive }

// Modes are the modes that decide where and how printed text lands.
type Modes struct {
	// Insert is IRM (CSI 4 h): printing shifts the rest of the line right.
	Insert bool
	// AutoWrap is DECAWM (CSI ? 7 h), on by default.
	AutoWrap bool
	// Origin is DECOM (CSI ? 6 h): cursor positions count from the top of
	// the scroll region.
	Origin bool
	// CursorVisible is DECTCEM (CSI ? 25 h), on by default.
	CursorVisible bool
	// AppCursor is DECCKM (CSI ? 1 h): the cursor keys send ESC O A..D.
	AppCursor bool
}

// Modes returns the current modes.
func (t *Terminal) Modes() Modes {
	m := t.modes
	return Modes{Insert: m.insert, AutoWrap: m.wraparound, Origin: m.origin,
		CursorVisible: !m.cursorHidden, AppCursor: m.appCursor}
}

// Idle reports whether the parser is between sequences, with no partial
// UTF-8 character held: bytes written to a terminal now start afresh
// instead of ending a sequence the program began.
func (t *Terminal) Idle() bool { return t.state == stGround && t.utf8Len == 0 }

// PlainCharset reports whether printable ASCII prints as itself: GL is
// mapped to US ASCII, not to a charset such as DEC line drawing.
func (t *Terminal) PlainCharset() bool { return t.table == nil }

// Cell returns the text of the cell at screen row and column ("" for an
// empty cell) and its width: 1, 2 for a wide character, 0 for the cell a
// wide one covers. Out of range it returns "", 0.
func (t *Terminal) Cell(row, col int) (text string, width int) {
	if row < 0 || row >= t.rows || col < 0 || col >= t.cols {
		return "", 0
	}
	l := t.buf.lines[row]
	return l.text(col), int(l.cells[col].width())
}

// BlankFrom reports whether screen row holds no text from column col to
// its end: empty cells and spaces only.
func (t *Terminal) BlankFrom(row, col int) bool {
	if row < 0 || row >= t.rows {
		return false
	}
	l := t.buf.lines[row]
	for x := max(col, 0); x < t.cols; x++ {
		if c := l.cells[x].ch; c != 0 && c != ' ' {
			return false
		}
	}
	return true
}

// AppendCellPen appends to dst the bytes that, from any pen, set a
// terminal's pen to print what the cell at row and col shows besides its
// text: SGR 0 and the colours and flags (with the underline style and
// colour), and OSC 8 with the cell's link or closing any open one. Out of
// range it appends the default pen's.
func (t *Terminal) AppendCellPen(dst []byte, row, col int) []byte {
	var a attrs
	if row >= 0 && row < t.rows && col >= 0 && col < t.cols {
		a = t.buf.lines[row].cells[col].attrs()
	}
	s := t.penWriter(dst)
	s.pen(a)
	return s.out
}

// AppendPen appends to dst the bytes that, from any pen, set a terminal's
// pen to the program's current one: SGR 0 and its colours and flags,
// underline style and colour, and OSC 8 with its open link or none.
func (t *Terminal) AppendPen(dst []byte) []byte {
	s := t.penWriter(dst)
	p := t.pen
	s.sgrUL(p.sgrAttrs(), p.ulColor)
	s.setLink(p.link)
	return s.out
}

// penWriter is a snapshotter that starts by putting the receiver's pen in
// the state a fresh snapshotter assumes: SGR 0, no link.
func (t *Terminal) penWriter(dst []byte) *snapshotter {
	dst = append(dst, "\x1b[0m\x1b]8;;\x1b\\"...)
	return &snapshotter{t: t, out: dst, full: noCell}
}

// PenLink returns the OSC 8 link the pen holds, its target and id=
// parameter, or "", "" for none. Opening a link without an id again (as
// AppendPen does) makes a terminal start another link to the same target.
func (t *Terminal) PenLink() (uri, id string) {
	if t.pen.link == 0 {
		return "", ""
	}
	d := t.ext.link(t.pen.link)
	return d.uri, d.id
}

// CellLink returns the OSC 8 link of the cell at row and col, as PenLink.
func (t *Terminal) CellLink(row, col int) (uri, id string) {
	if row < 0 || row >= t.rows || col < 0 || col >= t.cols {
		return "", ""
	}
	s := t.buf.lines[row].cells[col].attrs().slot()
	if s == 0 {
		return "", ""
	}
	l := t.ext.get(s).link
	if l == 0 {
		return "", ""
	}
	d := t.ext.link(l)
	return d.uri, d.id
}
