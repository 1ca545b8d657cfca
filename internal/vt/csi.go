package vt

import "strconv"

// csiDispatch runs the CSI sequence ending in final.
func (t *Terminal) csiDispatch(final byte) {
	p := &t.params
	n := p.get(0)
	if n == 0 {
		n = 1
	}
	b := t.buf
	switch t.collect {
	case 0:
		switch final {
		case '@':
			t.restrictCursor(t.cols - 1)
			b.lines[b.y].insertCells(b.x, n, t.eraseAttrs())
		case 'A':
			t.cursorUp(n)
		case 'B':
			t.cursorDown(n)
		case 'C', 'a':
			t.moveCursor(n, 0)
		case 'D':
			t.moveCursor(-n, 0)
		case 'E':
			t.cursorDown(n)
			b.x = 0
		case 'F':
			t.cursorUp(n)
			b.x = 0
		case 'G', '`':
			t.setCursor(n-1, b.y)
		case 'H', 'f':
			x := 0
			if p.n >= 2 {
				x = max(p.get(1), 1) - 1
			}
			t.setCursor(x, n-1)
		case 'I':
			if b.x < t.cols {
				for k := min(n, t.cols); k > 0; k-- {
					b.x = t.nextStop(b, b.x)
				}
			}
		case 'J':
			t.eraseInDisplay(p.get(0), false)
		case 'K':
			t.eraseInLine(p.get(0), false)
		case 'L':
			t.insertLines(n)
		case 'M':
			t.deleteLines(n)
		case 'P':
			t.restrictCursor(t.cols - 1)
			b.lines[b.y].deleteCells(b.x, n, t.eraseAttrs())
		case 'S':
			t.scrollRegion(n, true)
		case 'T':
			t.scrollRegion(n, false)
		case 'X':
			t.restrictCursor(t.cols - 1)
			b.lines[b.y].replaceCells(b.x, b.x+n, t.eraseAttrs())
		case 'Z':
			if b.x < t.cols {
				for k := min(n, t.cols); k > 0; k-- {
					b.x = t.prevStop(b, b.x)
				}
			}
		case 'b':
			t.repeat(n)
		case 'c':
			if p.get(0) == 0 {
				t.reply("\x1b[?1;2c")
			}
		case 'd':
			t.setCursor(b.x, n-1)
		case 'e':
			t.moveCursor(0, n)
		case 'g':
			switch p.get(0) {
			case 0:
				b.setTab(b.x, false)
			case 3:
				clear(b.tabs)
			}
		case 'h', 'l':
			for i := 0; i < p.n; i++ {
				switch p.get(i) {
				case 4:
					t.modes.insert = final == 'h'
				case 20:
					t.modes.convertEOL = final == 'h'
				}
			}
		case 'm':
			t.sgr()
		case 'n':
			switch p.get(0) {
			case 5:
				t.reply("\x1b[0n")
			case 6:
				t.reply("\x1b[", strconv.Itoa(b.y+1), ";", strconv.Itoa(b.x+1), "R")
			}
		case 'r':
			t.setScrollRegion()
		case 's':
			t.saveCursor()
		case 'u':
			t.restoreCursor()
		}
	case '?':
		switch final {
		case 'J':
			t.eraseInDisplay(p.get(0), true)
		case 'K':
			t.eraseInLine(p.get(0), true)
		case 'h', 'l':
			for i := 0; i < p.n; i++ {
				t.setPrivateMode(p.get(i), final == 'h')
			}
		case 'n':
			if p.get(0) == 6 {
				t.reply("\x1b[?", strconv.Itoa(b.y+1), ";", strconv.Itoa(b.x+1), "R")
			}
		}
	case '>':
		if final == 'c' && p.get(0) == 0 {
			t.reply("\x1b[>0;276;0c")
		}
	case '!':
		if final == 'p' {
			t.softReset()
		}
	case ' ':
		switch final {
		case 'q':
			t.setCursorStyle(p.get(0))
		case '@':
			t.shiftColumns(0, n, false)
		case 'A':
			t.shiftColumns(0, n, true)
		}
	case '\'':
		switch final {
		case '}':
			t.shiftColumns(b.x, n, true)
		case '~':
			t.shiftColumns(b.x, n, false)
		}
	case '"':
		if final == 'q' {
			switch p.get(0) {
			case 1:
				t.pen.flags |= attrProtected
			case 0, 2:
				t.pen.flags &^= attrProtected
			}
			t.penChanged()
		}
	case '$':
		if final == 'p' {
			t.requestMode(p.get(0), true)
		}
	case '?'<<8 | '$':
		if final == 'p' {
			t.requestMode(p.get(0), false)
		}
	}
}

// attrProtected marks cells DECSCA protected from selective erase; it is
// not part of what the client shows.
const attrProtected uint16 = 1 << 9

func (t *Terminal) setCursor(x, y int) {
	b := t.buf
	if t.modes.origin {
		b.x, b.y = x, b.scrollTop+y
	} else {
		b.x, b.y = x, y
	}
	t.restrictCursor(t.cols - 1)
}

// moveCursor moves relative to the cursor, clamped first, as xterm.js does
// (in origin mode it adds the region top again: xterm.js does too).
func (t *Terminal) moveCursor(dx, dy int) {
	t.restrictCursor(t.cols - 1)
	t.setCursor(t.buf.x+dx, t.buf.y+dy)
}

func (t *Terminal) cursorUp(n int) {
	if d := t.buf.y - t.buf.scrollTop; d >= 0 {
		t.moveCursor(0, -min(d, n))
	} else {
		t.moveCursor(0, -n)
	}
}

func (t *Terminal) cursorDown(n int) {
	if d := t.buf.scrollBottom - t.buf.y; d >= 0 {
		t.moveCursor(0, min(d, n))
	} else {
		t.moveCursor(0, n)
	}
}

// eraseInDisplay is ED, or DECSED (selective) which spares DECSCA-protected
// cells.
func (t *Terminal) eraseInDisplay(mode int, sel bool) {
	t.restrictCursor(t.cols)
	b := t.buf
	switch mode {
	case 0:
		t.eraseLine(b.y, b.x, t.cols, b.x == 0, sel)
		for y := b.y + 1; y < t.rows; y++ {
			t.resetLine(y, sel)
		}
	case 1:
		t.eraseLine(b.y, 0, b.x+1, true, sel)
		if b.x+1 >= t.cols {
			// xterm.js clears the wrap flag of the line at absolute index
			// y+1, counting from the top of the scrollback.
			abs := b.y + 1
			if yb := t.ybase(); abs < yb {
				t.sb.at(abs).wrapped = false
			} else if abs-yb < t.rows {
				b.lines[abs-yb].wrapped = false
			}
		}
		for y := b.y - 1; y >= 0; y-- {
			t.resetLine(y, sel)
		}
	case 2:
		for y := 0; y < t.rows; y++ {
			t.resetLine(y, sel)
		}
	case 3:
		if !t.altActive {
			t.sb.trimOldest(t.sb.len())
		}
	}
}

// eraseInLine is EL, or DECSEL (selective).
func (t *Terminal) eraseInLine(mode int, sel bool) {
	t.restrictCursor(t.cols)
	b := t.buf
	switch mode {
	case 0:
		t.eraseLine(b.y, b.x, t.cols, b.x == 0, sel)
	case 1:
		t.eraseLine(b.y, 0, b.x+1, false, sel)
	case 2:
		t.eraseLine(b.y, 0, t.cols, true, sel)
	}
}

func (t *Terminal) eraseLine(y, start, end int, clearWrap, sel bool) {
	ln := t.buf.lines[y]
	if sel {
		ln.replaceUnprotected(start, end, t.eraseAttrs())
	} else {
		ln.replaceCells(start, end, t.eraseAttrs())
	}
	if clearWrap {
		ln.wrapped = false
	}
}

func (t *Terminal) resetLine(y int, sel bool) {
	ln := t.buf.lines[y]
	if sel {
		ln.replaceUnprotected(0, len(ln.cells), t.eraseAttrs())
	} else {
		ln.fill(t.eraseAttrs())
	}
	ln.wrapped = false
}

// rotateDown moves lines [from, to] down by n (n <= to-from+1), blanking
// the n lines that enter at from with attributes a.
func (t *Terminal) rotateDown(from, to, n int, a attrs) {
	ls := t.buf.lines
	var tmp [8]*line
	for n > 0 {
		k := min(n, len(tmp))
		copy(tmp[:k], ls[to-k+1:to+1])
		copy(ls[from+k:to+1], ls[from:to-k+1])
		for i := 0; i < k; i++ {
			t.blankLine(tmp[i], a)
			ls[from+i] = tmp[i]
		}
		n -= k
	}
}

// rotateUp moves lines [from, to] up by n, blanking the n lines that enter
// at to with attributes a.
func (t *Terminal) rotateUp(from, to, n int, a attrs) {
	ls := t.buf.lines
	var tmp [8]*line
	for n > 0 {
		k := min(n, len(tmp))
		copy(tmp[:k], ls[from:from+k])
		copy(ls[from:to-k+1], ls[from+k:to+1])
		for i := 0; i < k; i++ {
			t.blankLine(tmp[i], a)
			ls[to-k+1+i] = tmp[i]
		}
		n -= k
	}
}

func (t *Terminal) blankLine(l *line, a attrs) {
	if len(l.cells) != t.cols {
		l.resize(t.cols, a)
	}
	l.fill(a)
	l.wrapped = false
}

func (t *Terminal) insertLines(n int) {
	t.restrictCursor(t.cols - 1)
	b := t.buf
	if b.y > b.scrollBottom || b.y < b.scrollTop {
		return
	}
	t.rotateDown(b.y, b.scrollBottom, min(n, b.scrollBottom-b.y+1), t.eraseAttrs())
	b.x = 0
}

func (t *Terminal) deleteLines(n int) {
	t.restrictCursor(t.cols - 1)
	b := t.buf
	if b.y > b.scrollBottom || b.y < b.scrollTop {
		return
	}
	t.rotateUp(b.y, b.scrollBottom, min(n, b.scrollBottom-b.y+1), t.eraseAttrs())
	b.x = 0
}

// scrollRegion is SU (up) and SD: no line goes to the scrollback; SD's new
// lines have default attributes, as in xterm.js.
func (t *Terminal) scrollRegion(n int, up bool) {
	b := t.buf
	h := b.scrollBottom - b.scrollTop + 1
	n = min(n, h)
	if up {
		t.rotateUp(b.scrollTop, b.scrollBottom, n, t.eraseAttrs())
	} else {
		t.rotateDown(b.scrollTop, b.scrollBottom, n, attrs{})
	}
}

// shiftColumns is SL/SR (at 0) and DECIC/DECDC (at the cursor) over the
// scroll region.
func (t *Terminal) shiftColumns(at, n int, insert bool) {
	b := t.buf
	if b.y > b.scrollBottom || b.y < b.scrollTop {
		return
	}
	for y := b.scrollTop; y <= b.scrollBottom; y++ {
		ln := b.lines[y]
		if insert {
			ln.insertCells(at, n, t.eraseAttrs())
		} else {
			ln.deleteCells(at, n, t.eraseAttrs())
		}
		ln.wrapped = false
	}
}

// repeat is REP: the preceding character again, n times, only straight
// after it was printed.
func (t *Terminal) repeat(n int) {
	if t.joinWidth == 0 {
		return
	}
	b := t.buf
	x := b.x - t.joinWidth
	if x < 0 || x >= t.cols {
		return
	}
	ln := b.lines[b.y]
	var buf [16]rune
	runes := buf[:0]
	if c := &ln.cells[x]; c.ch == combinedRune {
		for _, r := range ln.combined[x] {
			runes = append(runes, r)
		}
	} else if c.ch != 0 {
		runes = append(runes, c.ch)
	}
	if len(runes) == 0 {
		return
	}
	// Past the whole screen and scrollback more repeats only move the cursor
	// round the line; keep the same phase.
	if limit := (t.rows + t.scrollbackMax + 2) * t.cols; n > limit {
		n = limit + (n-limit)%t.cols
	}
	t.printStart()
	for ; n > 0; n-- {
		for _, r := range runes {
			t.printRune(r)
		}
	}
	t.printEnd()
}

func (t *Terminal) setScrollRegion() {
	p := &t.params
	top := max(p.get(0), 1)
	bottom := p.get(1)
	if p.n < 2 || bottom > t.rows || bottom == 0 {
		bottom = t.rows
	}
	if bottom > top {
		t.buf.scrollTop = top - 1
		t.buf.scrollBottom = bottom - 1
		t.setCursor(0, 0)
	}
}

func (t *Terminal) setCursorStyle(p int) {
	if p == 0 {
		t.modes.cursorStyle = cursorDefault
		t.modes.blinkSet, t.modes.cursorBlink = false, false
		return
	}
	switch p {
	case 1, 2:
		t.modes.cursorStyle = cursorBlock
	case 3, 4:
		t.modes.cursorStyle = cursorUnderline
	case 5, 6:
		t.modes.cursorStyle = cursorBar
	}
	t.modes.blinkSet, t.modes.cursorBlink = true, p%2 == 1
}

func (t *Terminal) saveCursor() {
	b := t.buf
	b.saved = savedCursor{
		x: b.x, y: t.ybase() + b.y,
		fg: t.pen.fg, bg: t.pen.bg, flags: t.pen.flags, hasExt: t.pen.hasExt,
		charset: t.active,
	}
}

func (t *Terminal) restoreCursor() {
	b := t.buf
	b.x = b.saved.x
	b.y = max(b.saved.y-t.ybase(), 0)
	t.pen.fg, t.pen.bg, t.pen.flags, t.pen.hasExt = b.saved.fg, b.saved.bg, b.saved.flags, b.saved.hasExt
	t.penChanged()
	// xterm.js restores the saved table into GL's slot without changing the
	// designation of G0..G3.
	t.setActive(b.saved.charset)
	t.restrictCursor(t.cols - 1)
}

func (t *Terminal) softReset() {
	t.modes.cursorHidden = false
	b := t.buf
	b.scrollTop, b.scrollBottom = 0, t.rows-1
	t.pen = pen{}
	t.penAttrs = attrs{}
	t.modes.appCursor, t.modes.appKeypad, t.modes.bracketedPaste = false, false, false
	t.modes.insert, t.modes.origin, t.modes.reverseWrap, t.modes.sendFocus = false, false, false, false
	t.modes.syncOutput = false
	t.modes.wraparound = true
	t.modes.cursorStyle, t.modes.blinkSet, t.modes.cursorBlink = cursorDefault, false, false
	t.charsets = [4]charset{}
	t.gl = 0
	t.setActive(0)
	b.saved = savedCursor{y: t.ybase()}
}
