package vt

// color is a cell colour: colorDefault, colorP16|index (0..15: SGR 30-37,
// 90-97), colorP256|index (0..255: SGR 38;5;N) or colorRGB|0xRRGGBB, in
// xterm.js's colour modes: it keeps 16- and 256-colour indexes apart and
// draws them differently (bold brightens a 16-colour foreground only).
type color uint32

const (
	colorDefault color = 0
	colorP16     color = 1 << 24
	colorP256    color = 2 << 24
	colorRGB     color = 3 << 24
	colorMode    color = 3 << 24
)

// Attribute bits of attrs.flags; the same bits as xtermjs.Cell.Flags.
const (
	attrBold uint16 = 1 << iota
	attrDim
	attrItalic
	attrUnderline
	attrBlink
	attrInverse
	attrInvisible
	attrStrikethrough
	attrOverline
)

// attrs is what a cell shows besides its text.
type attrs struct {
	fg, bg color
	flags  uint16
	// ul is the underline style shown (0 none, 1 single, 2 double, 3 curly,
	// 4 dotted, 5 dashed), as xterm.js derives it from the pen.
	ul uint8
}

// combinedRune in cell.ch means the cell's text is a grapheme cluster kept
// in its line's combined map.
const combinedRune rune = -1

// cell is one screen cell, 16 bytes: the attributes are spelled out, not
// embedded as attrs, whose padding would make a cell 20 bytes (a quarter
// more memory to clear and write for every line of output). The last three
// are grouped so that a cell has four fields: the compiler keeps a struct
// of at most four in registers, and copies a bigger one through the stack,
// where reading one byte back from a 16-byte copy stalls the CPU.
type cell struct {
	// ch is the code point, 0 for an empty cell, combinedRune for a cluster.
	ch     rune
	fg, bg color
	cellTail
}

// cellTail is a cell's last four bytes, grouped to keep cell at four
// fields.
type cellTail struct {
	flags uint16
	ul    uint8
	// wx is the width xor 1, so that the zero cell is an empty cell of
	// width 1 and clearing is a memory clear. The width is 1, 2 for a wide
	// character, 0 for the cell a wide one covers (and for a lone
	// zero-width character, as xterm.js stores it).
	wx uint8
}

// put makes *c a cell showing ch with attributes a and width-xor wx.
func (c *cell) put(ch rune, a attrs, wx uint8) {
	c.ch, c.fg, c.bg, c.flags, c.ul, c.wx = ch, a.fg, a.bg, a.flags, a.ul, wx
}

// blankCells blanks cells with attributes a.
func blankCells(cells []cell, a attrs) {
	if a == (attrs{}) {
		clear(cells)
		return
	}
	for i := range cells {
		cells[i].put(0, a, 0)
	}
}

// attrs returns what the cell shows besides its text.
func (c cell) attrs() attrs { return attrs{fg: c.fg, bg: c.bg, flags: c.flags, ul: c.ul} }

func (c cell) width() uint8 { return c.wx ^ 1 }

// line is one row of cells. (Its fields are ordered to keep it 80 bytes:
// a screen holds a few dozen of them per session.)
type line struct {
	cells []cell
	// combined holds the clusters of cells whose ch is combinedRune, by
	// column; nil until a line has one.
	combined map[int]string
	// used bounds the cells that may differ from an empty default cell:
	// cells[used:] are all cell{}. It keeps clearing and storing
	// short lines cheap.
	used int

	// chars and pen are the line's text and attributes while it is plain.
	chars []byte
	pen   attrs

	// wrapped is true when this line continues the previous one (a soft wrap).
	wrapped bool
	// plain is true while the line is what output such as logs and yes
	// make of a line: printable ASCII from column 0 in one pen, and
	// nothing else: cells[:used] hold chars[i] in attributes pen, cells[used:]
	// are empty and there is no cluster. The scrollback then keeps the line
	// as its text and pen (copied from the output as it was printed), and
	// the screen reuses the line's cells, still in the cache, at once.
	// Only printASCII's fast path keeps it true; every other change to the
	// cells clears it.
	plain bool
	// textOnly is true while a plain line's cells are not written yet: they
	// are all empty, and its text is only in chars. Only inside printASCII,
	// which writes the cells of those still on the screen before it
	// returns; a line scrolled off meanwhile goes to the scrollback as its
	// text, and its cells, still all empty, need no clearing.
	textOnly bool
}

// materialize writes a text-only line's cells from its text and pen.
func (l *line) materialize() {
	cells, text := l.cells[:l.used], l.chars[:l.used]
	if l.pen == (attrs{}) {
		putText(cells, text)
	} else {
		a := l.pen
		putTextAttrs(cells, text, cell{fg: a.fg, bg: a.bg, cellTail: cellTail{flags: a.flags, ul: a.ul}})
	}
	l.textOnly = false
}

// touch records that cell i may now differ from an empty default cell.
func (l *line) touch(i int) {
	l.plain = false
	if i >= l.used {
		l.used = min(i+1, len(l.cells))
	}
}

// touchAll records that any cell may differ from an empty default cell.
func (l *line) touchAll() {
	l.plain = false
	l.used = len(l.cells)
}

func newLine(cols int, a attrs) *line {
	l := &line{cells: make([]cell, cols)}
	l.used = cols
	l.fill(a)
	return l
}

// fill blanks the whole line with attributes a.
func (l *line) fill(a attrs) {
	if l.textOnly {
		// Its cells are all empty already.
		l.used, l.textOnly = 0, false
	}
	if a == (attrs{}) {
		clear(l.cells[:min(l.used, len(l.cells))])
		l.used = 0
		l.plain = true
	} else {
		blankCells(l.cells, a)
		l.used = len(l.cells)
		l.plain = false
	}
	if l.combined != nil {
		clear(l.combined)
	}
}

// text returns the text of cell i ("" when empty).
func (l *line) text(i int) string {
	c := &l.cells[i]
	switch {
	case c.ch == combinedRune:
		return l.combined[i]
	case c.ch == 0:
		return ""
	default:
		return string(c.ch)
	}
}

// set stores a cell showing ch (a single code point or 0) with attributes a
// and width-xor wx at column i; out of range writes are dropped as a typed
// array drops them in xterm.js.
func (l *line) set(i int, ch rune, a attrs, wx uint8) {
	if i < 0 || i >= len(l.cells) {
		return
	}
	l.cells[i].put(ch, a, wx)
	l.touch(i)
}

// setBlank resets cell i to an empty cell of width w.
func (l *line) setBlank(i int, w uint8, a attrs) { l.set(i, 0, a, w^1) }

// addCodepoint appends r to the text of cell i (xterm.js
// addCodepointToCell), setting its width to w unless w is 0.
func (l *line) addCodepoint(i int, r rune, w int) {
	if i < 0 || i >= len(l.cells) {
		return
	}
	l.touch(i)
	c := &l.cells[i]
	switch {
	case c.ch == combinedRune:
		l.combined[i] += string(r)
	case c.ch != 0:
		if l.combined == nil {
			l.combined = make(map[int]string, 1)
		}
		l.combined[i] = string(c.ch) + string(r)
		c.ch = combinedRune
	default:
		c.ch = r
		c.wx = 1 ^ 1
	}
	if w != 0 {
		c.wx = uint8(w) ^ 1
	}
}

// copyCell copies cell src of line from to column dst of l, with its cluster.
func (l *line) copyCell(dst int, from *line, src int) {
	c := &from.cells[src]
	if c.ch == combinedRune {
		s := from.combined[src]
		if l.combined == nil {
			l.combined = make(map[int]string, 1)
		}
		l.combined[dst] = s
	}
	l.cells[dst] = *c
	l.touch(dst)
}

// hasContent reports whether cell i holds text.
func (l *line) hasContent(i int) bool { return l.cells[i].ch != 0 }

// trimmedLength is xterm.js getTrimmedLength: the end of the last cell with
// text, counting its width.
func (l *line) trimmedLength() int {
	for i := l.used - 1; i >= 0; i-- {
		if l.cells[i].ch != 0 {
			return i + int(l.cells[i].width())
		}
	}
	return 0
}

// insertCells shifts cells right from pos by n, filling with blanks of a.
func (l *line) insertCells(pos, n int, a attrs) {
	l.touchAll()
	length := len(l.cells)
	pos %= length
	if pos > 0 && l.cells[pos-1].width() == 2 {
		l.setBlank(pos-1, 1, a)
	}
	if n < length-pos {
		for i := length - pos - n - 1; i >= 0; i-- {
			l.copyCell(pos+n+i, l, pos+i)
		}
		for i := 0; i < n; i++ {
			l.cells[pos+i].put(0, a, 0)
		}
	} else {
		for i := pos; i < length; i++ {
			l.cells[i].put(0, a, 0)
		}
	}
	if l.cells[length-1].width() == 2 {
		l.setBlank(length-1, 1, a)
	}
}

// deleteCells removes n cells at pos, shifting the rest left and filling
// the end with blanks of a.
func (l *line) deleteCells(pos, n int, a attrs) {
	l.touchAll()
	length := len(l.cells)
	pos %= length
	if n < length-pos {
		for i := 0; i < length-pos-n; i++ {
			l.copyCell(pos+i, l, pos+n+i)
		}
		for i := length - n; i < length; i++ {
			l.cells[i].put(0, a, 0)
		}
	} else {
		for i := pos; i < length; i++ {
			l.cells[i].put(0, a, 0)
		}
	}
	if pos > 0 && l.cells[pos-1].width() == 2 {
		l.setBlank(pos-1, 1, a)
	}
	if l.cells[pos].width() == 0 && !l.hasContent(pos) {
		l.setBlank(pos, 1, a)
	}
}

// replaceCells blanks [start, end) with attributes a, breaking wide
// characters cut at either edge.
func (l *line) replaceCells(start, end int, a attrs) {
	l.plain = false
	if a != (attrs{}) {
		l.touchAll()
	}
	length := len(l.cells)
	if start > 0 && start <= length && l.cells[start-1].width() == 2 {
		l.setBlank(start-1, 1, a)
	}
	if end < length && end > 0 && l.cells[end-1].width() == 2 {
		l.setBlank(end, 1, a)
	}
	for ; start < end && start < length; start++ {
		l.cells[start].put(0, a, 0)
	}
}

// resize changes the line's length; new cells are blanks of a.
func (l *line) resize(cols int, a attrs) {
	old := len(l.cells)
	if cols == old {
		return
	}
	if l.textOnly {
		l.materialize()
	}
	l.plain = false
	if cols > old {
		if cap(l.cells) >= cols {
			l.cells = l.cells[:cols]
		} else {
			n := make([]cell, cols)
			copy(n, l.cells)
			l.cells = n
		}
		for i := old; i < cols; i++ {
			l.cells[i].put(0, a, 0)
		}
		if a != (attrs{}) {
			l.touchAll()
		}
		return
	}
	l.cells = l.cells[:cols]
	l.used = min(l.used, cols)
	for k := range l.combined {
		if k >= cols {
			delete(l.combined, k)
		}
	}
}

func (l *line) protected(i int) bool { return l.cells[i].flags&attrProtected != 0 }

// replaceUnprotected blanks the cells of [start, end) that DECSCA did not
// protect (xterm.js replaceCells with respectProtect).
func (l *line) replaceUnprotected(start, end int, a attrs) {
	l.plain = false
	if a != (attrs{}) {
		l.touchAll()
	}
	length := len(l.cells)
	if start > 0 && start <= length && l.cells[start-1].width() == 2 && !l.protected(start-1) {
		l.setBlank(start-1, 1, a)
	}
	if end < length && end > 0 && l.cells[end-1].width() == 2 && !l.protected(end) {
		l.setBlank(end, 1, a)
	}
	for ; start < end && start < length; start++ {
		if !l.protected(start) {
			l.cells[start].put(0, a, 0)
		}
	}
}

// copyCellsFrom copies n cells of src from srcCol to l at destCol
// (xterm.js copyCellsFrom; reverse copies right to left).
func (l *line) copyCellsFrom(src *line, srcCol, destCol, n int, reverse bool) {
	if reverse {
		for i := n - 1; i >= 0; i-- {
			if destCol+i < len(l.cells) && srcCol+i < len(src.cells) {
				l.copyCell(destCol+i, src, srcCol+i)
			}
		}
		return
	}
	for i := 0; i < n; i++ {
		if destCol+i < len(l.cells) && srcCol+i < len(src.cells) {
			l.copyCell(destCol+i, src, srcCol+i)
		}
	}
}
