package vt

import (
	"encoding/binary"
	"math/bits"
)

// advance runs one code point through the state machine.
func (t *Terminal) advance(r rune, inPrint *bool) {
	idx := r
	if idx > nonASCIIPrintable {
		idx = nonASCIIPrintable
	}
	tr := transitions[t.state][idx]
	act := paction(tr >> 4)
	if act == acPrint {
		if !*inPrint {
			t.printStart()
			*inPrint = true
		}
		t.printRune(r)
		t.state = pstate(tr & 15)
		return
	}
	if *inPrint {
		t.printEnd()
		*inPrint = false
	}
	next := pstate(tr & 15)
	switch act {
	case acExecute:
		t.execute(r)
		t.joinWidth = 0
	case acIgnore, acError:
	case acCSIDispatch:
		t.csiDispatch(byte(r))
		t.joinWidth = 0
	case acParam:
		switch r {
		case ';':
			t.params.addParam(0)
		case ':':
			t.params.addSub(-1)
		default:
			t.params.addDigit(int32(r - '0'))
		}
	case acCollect:
		t.collect = t.collect<<8 | uint32(r)
	case acESCDispatch:
		t.escDispatch(byte(r))
		t.joinWidth = 0
	case acClear:
		t.params.reset()
		t.collect = 0
	case acDCSHook, acDCSPut:
	case acDCSUnhook:
		t.params.reset()
		t.collect = 0
		t.joinWidth = 0
		if r == 0x1b {
			next = stEscape
		}
	case acOSCStart:
		t.oscStart()
	case acOSCPut:
		t.oscPut(r)
	case acOSCEnd:
		t.oscEnd(r != 0x18 && r != 0x1a)
		t.params.reset()
		t.collect = 0
		t.joinWidth = 0
		if r == 0x1b {
			next = stEscape
		}
	}
	t.state = next
}

// printStart and printEnd bracket a run of printed characters, as xterm.js
// handles a run: a wide character whose right half is about to be written
// over is erased first, and a right half left without its left half is
// turned into an empty cell after.
func (t *Terminal) printStart() {
	b := t.buf
	if b.x > 0 && b.x <= t.cols {
		ln := b.lines[b.y]
		if ln.cells[b.x-1].width() == 2 {
			ln.setBlank(b.x-1, 1, t.penAttrs)
		}
	}
}

func (t *Terminal) printEnd() {
	b := t.buf
	if b.x < t.cols {
		// Past used every cell is an empty narrow one: the cell is not
		// read, as after a run of text it is often out of the cache.
		if ln := b.lines[b.y]; b.x < ln.used && !ln.textOnly && ln.cells[b.x].width() == 0 && ln.cells[b.x].ch == 0 {
			ln.setBlank(b.x, 1, t.penAttrs)
		}
	}
}

// printASCII prints the leading run of printable ASCII (0x20..0x7e) of p,
// whose first byte is one, and the lines of text that follow it separated
// by CR LF, and returns the length printed: the hot path. It
// finds the end of the run as it writes, eight bytes at a time, instead of
// a pass to find it and one to write it.
func (t *Terminal) printASCII(p []byte) int {
	if t.table != nil || t.modes.insert {
		n := 1 + printableRun(p[1:])
		for _, c := range p[:n] {
			t.printRune(rune(c))
		}
		return n
	}
	b := t.buf
	a := t.penAttrs
	done := 0
	// deferred counts the lines this call began at column 0 after a CR LF
	// and kept as text only (line.textOnly): their cells are written when
	// the call returns, if they are still on the screen; most of a flood's
	// lines leave it first, and their cells are never written at all.
	deferred := 0
	for {
		if b.x >= t.cols {
			// The line is full: printRune wraps (or not) as xterm.js does.
			if ln := b.lines[b.y]; ln.textOnly {
				ln.materialize()
			}
			t.printRune(rune(p[done]))
			done++
		} else {
			ln := b.lines[b.y]
			var n int
			if ln.textOnly {
				n = copyText(ln.chars[b.x:t.cols], p[done:])
			} else {
				cells := ln.cells[b.x:t.cols]
				if a == (attrs{}) && b.x >= ln.used {
					// Past used every cell is cell{}: only the text changes.
					n = putText(cells, p[done:])
				} else {
					n = putTextAttrs(cells, p[done:], cell{fg: a.fg, bg: a.bg, cellTail: cellTail{flags: a.flags, ul: a.ul}})
				}
				if ln.plain {
					// Keep the line's text beside its cells while it is
					// plain: one pen, from column 0, no gap.
					// (A line gets a buffer for its text only in a flood,
					// below: an interactive session's lines need none.)
					if b.x == 0 {
						ln.pen = a
					}
					if b.x == ln.used && ln.pen == a && b.x+n <= len(ln.chars) {
						copy(ln.chars[b.x:b.x+n], p[done:])
					} else {
						ln.plain = false
					}
				}
			}
			if b.x+n > ln.used {
				ln.used = b.x + n
			}
			b.x += n
			done += n
			t.joinWidth = 1
		}
		if done == len(p) {
			break
		}
		if c := p[done]; c < 0x20 || c >= 0x7f {
			// CR LF between two lines of text, the commonest control
			// of all, is done here, without leaving the loop: the run
			// ends, the cursor moves, and the next run begins at
			// column 0, where it has no wide character to break.
			if c != '\r' || len(p)-done < 3 || p[done+1] != '\n' || p[done+2] < 0x20 || p[done+2] >= 0x7f {
				break
			}
			t.printEnd()
			b.x = 0
			t.lineFeed()
			done += 2
			// A blank plain line (all its cells empty) takes the next
			// line's text as text only.
			if ln := b.lines[b.y]; ln.plain && ln.used == 0 && len(ln.cells) >= t.cols {
				if len(ln.chars) < t.cols {
					ln.chars = make([]byte, t.cols)
				}
				ln.pen = a
				ln.textOnly = true
				deferred++
			}
		}
	}
	if deferred > 0 {
		for _, ln := range b.lines {
			if ln.textOnly {
				ln.materialize()
			}
		}
	}
	return done
}

// copyText copies the leading printable ASCII of s to dst, as much as
// fits, and returns how much it copied; it may write dst past that.
func copyText(dst, s []byte) int {
	n := min(len(dst), len(s))
	k := 0
	for ; k+8 <= n; k += 8 {
		x := binary.LittleEndian.Uint64(s[k:])
		// All eight are stored even when the text ends among them: dst
		// has room, and what lies past the text is not read.
		binary.LittleEndian.PutUint64(dst[k:], x)
		if m := unprintable8(x); m != 0 {
			return k + bits.TrailingZeros64(m)/8
		}
	}
	for ; k < n; k++ {
		c := s[k]
		if c < 0x20 || c >= 0x7f {
			return k
		}
		dst[k] = c
	}
	return n
}

const (
	bytesOnes  = 0x0101010101010101
	bytesHighs = 0x8080808080808080
)

// printable8 reports whether the eight bytes of x are all printable ASCII.
func printable8(x uint64) bool { return unprintable8(x) == 0 }

// unprintable8 marks the high bit of the first byte of x (the lowest) that
// is not printable ASCII, and maybe of later ones: a byte below 0x20
// borrows and one from 0x7f up carries or has its high bit set. A borrow
// or carry only runs on from a byte that is itself not printable, so the
// bytes before the first such one are left unmarked.
func unprintable8(x uint64) uint64 {
	return ((x - 0x20*bytesOnes) | (x + bytesOnes) | x) & bytesHighs
}

// putText stores the leading printable ASCII of s as the text of cells, as
// many as fit, and returns how many it stored.
func putText(cells []cell, s []byte) int {
	n := min(len(cells), len(s))
	k := 0
	for ; k+8 <= n; k += 8 {
		x := binary.LittleEndian.Uint64(s[k:])
		if m := unprintable8(x); m != 0 {
			// The run ends in these eight bytes: write those before.
			end := k + bits.TrailingZeros64(m)/8
			for ; k < end; k++ {
				cells[k].ch = rune(x & 0xff)
				x >>= 8
			}
			return k
		}
		c := cells[k : k+8 : k+8]
		c[0].ch = rune(x & 0xff)
		c[1].ch = rune(x >> 8 & 0xff)
		c[2].ch = rune(x >> 16 & 0xff)
		c[3].ch = rune(x >> 24 & 0xff)
		c[4].ch = rune(x >> 32 & 0xff)
		c[5].ch = rune(x >> 40 & 0xff)
		c[6].ch = rune(x >> 48 & 0xff)
		c[7].ch = rune(x >> 56)
	}
	s, cells = s[k:n], cells[k:n]
	for j, c := range s {
		if c < 0x20 || c >= 0x7f {
			return k + j
		}
		cells[j].ch = rune(c)
	}
	return n
}

// putTextAttrs is putText for cells that get the attributes of pen (a
// cell with no text) as well.
func putTextAttrs(cells []cell, s []byte, pen cell) int {
	n := min(len(cells), len(s))
	k := 0
	for ; k+8 <= n; k += 8 {
		x := binary.LittleEndian.Uint64(s[k:])
		if m := unprintable8(x); m != 0 {
			// The run ends in these eight bytes: write those before.
			end := k + bits.TrailingZeros64(m)/8
			for ; k < end; k++ {
				cells[k] = pen
				cells[k].ch = rune(x & 0xff)
				x >>= 8
			}
			return k
		}
		c := cells[k : k+8 : k+8]
		for j := range c {
			c[j] = pen
			c[j].ch = rune(x >> (8 * j) & 0xff)
		}
	}
	s, cells = s[k:n], cells[k:n]
	for j, c := range s {
		if c < 0x20 || c >= 0x7f {
			return k + j
		}
		cells[j] = pen
		cells[j].ch = rune(c)
	}
	return n
}

// printRune prints one code point (xterm.js InputHandler.print's loop body).
func (t *Terminal) printRune(r rune) {
	if r < 0x7f && t.table != nil && r >= 0x20 {
		if m := t.table[r-0x20]; m != 0 {
			r = m
		}
	}
	b := t.buf
	cols := t.cols
	w := runeWidth(r)
	join := false
	oldW := 0
	if w == 0 && t.joinWidth != 0 {
		join = true
		oldW = t.joinWidth
		w = oldW
	}
	// A lone zero-width character leaves 0: nothing joins it.
	t.joinWidth = w
	ln := b.lines[b.y]
	if b.x+w-oldW > cols {
		if t.modes.wraparound {
			oldRow := ln
			oldCol := b.x - oldW
			b.x = oldW
			b.y++
			if b.y == b.scrollBottom+1 {
				b.y--
				t.scrollUp(t.eraseAttrs(), true)
			} else {
				if b.y >= t.rows {
					b.y = t.rows - 1
				}
				b.lines[b.y].wrapped = true
			}
			ln = b.lines[b.y]
			if oldW > 0 {
				for k := 0; k < oldW; k++ {
					if oldCol+k >= 0 && oldCol+k < len(oldRow.cells) && k < len(ln.cells) {
						ln.copyCell(k, oldRow, oldCol+k)
					}
				}
			}
			for ; oldCol < cols; oldCol++ {
				oldRow.setBlank(oldCol, 1, t.penAttrs)
			}
		} else {
			b.x = cols - 1
			if w == 2 {
				return
			}
		}
	}
	if join && b.x > 0 {
		off := 2
		if b.x-1 < len(ln.cells) && ln.cells[b.x-1].width() != 0 {
			off = 1
		}
		ln.addCodepoint(b.x-off, r, w)
		return
	}
	if t.modes.insert {
		ln.insertCells(b.x, w-oldW, t.penAttrs)
		if ln.cells[cols-1].width() == 2 {
			ln.setBlank(cols-1, 1, t.penAttrs)
		}
	}
	ln.set(b.x, r, t.penAttrs, uint8(w)^1)
	b.x++
	for k := w; k > 1; k-- {
		ln.setBlank(b.x, 0, t.penAttrs)
		b.x++
	}
}

// execute runs a C0 or C1 control.
func (t *Terminal) execute(r rune) {
	switch r {
	case 0x0a, 0x0b, 0x0c:
		t.lineFeed()
	case 0x0d:
		t.buf.x = 0
	case 0x08:
		t.backspace()
	case 0x09:
		if t.buf.x < t.cols {
			t.buf.x = t.nextStop(t.buf, t.buf.x)
		}
	case 0x0e:
		t.setGL(1)
	case 0x0f:
		t.setGL(0)
	case 0x84:
		t.index()
	case 0x85:
		t.buf.x = 0
		t.index()
	case 0x88:
		t.buf.setTab(t.buf.x, true)
	}
}

// eraseAttrs are the attributes of cells an erase leaves: the pen's
// background colour only.
func (t *Terminal) eraseAttrs() attrs { return attrs{bg: t.pen.bg} }

func (t *Terminal) lineFeed() {
	b := t.buf
	if t.modes.convertEOL {
		b.x = 0
	}
	b.y++
	if b.y == b.scrollBottom+1 {
		b.y--
		t.scrollUp(t.eraseAttrs(), false)
	} else if b.y >= t.rows {
		b.y = t.rows - 1
	} else {
		b.lines[b.y].wrapped = false
	}
	if b.x >= t.cols {
		b.x--
	}
}

func (t *Terminal) index() {
	t.restrictCursor(t.cols - 1)
	b := t.buf
	b.y++
	if b.y == b.scrollBottom+1 {
		b.y--
		t.scrollUp(t.eraseAttrs(), false)
	} else if b.y >= t.rows {
		b.y = t.rows - 1
	}
	t.restrictCursor(t.cols - 1)
}

func (t *Terminal) reverseIndex() {
	t.restrictCursor(t.cols - 1)
	b := t.buf
	if b.y == b.scrollTop {
		// Rotate the region down by one; the freed top line is blanked.
		bot := b.lines[b.scrollBottom]
		copy(b.lines[b.scrollTop+1:b.scrollBottom+1], b.lines[b.scrollTop:b.scrollBottom])
		bot.fill(t.eraseAttrs())
		bot.wrapped = false
		b.lines[b.scrollTop] = bot
	} else {
		b.y--
		t.restrictCursor(t.cols - 1)
	}
}

func (t *Terminal) backspace() {
	b := t.buf
	if !t.modes.reverseWrap {
		t.restrictCursor(t.cols - 1)
		if b.x > 0 {
			b.x--
		}
		return
	}
	t.restrictCursor(t.cols)
	if b.x > 0 {
		b.x--
	} else if b.y > b.scrollTop && b.y <= b.scrollBottom && b.lines[b.y].wrapped {
		b.lines[b.y].wrapped = false
		b.y--
		b.x = t.cols - 1
		ln := b.lines[b.y]
		if ln.cells[b.x].width() == 1 && !ln.hasContent(b.x) {
			b.x--
		}
	}
	t.restrictCursor(t.cols - 1)
}

// restrictCursor clamps the cursor to the screen (to the region in origin
// mode), x to maxCol.
func (t *Terminal) restrictCursor(maxCol int) {
	b := t.buf
	b.x = min(maxCol, max(0, b.x))
	if t.modes.origin {
		b.y = min(b.scrollBottom, max(b.scrollTop, b.y))
	} else {
		b.y = min(t.rows-1, max(0, b.y))
	}
}

// scrollUp scrolls the region up one line. With the region at the top of
// the normal screen the top line goes to the scrollback, as in xterm.js;
// the new bottom line is blank with attributes a.
func (t *Terminal) scrollUp(a attrs, wrapped bool) {
	b := t.buf
	top := b.lines[b.scrollTop]
	if b.scrollTop == 0 && !t.altActive {
		// The scrollback may keep top itself: the new bottom line is
		// then the one it hands back.
		top = t.sb.push(top)
	}
	if b.scrollTop == 0 && b.scrollBottom == len(b.lines)-1 {
		b.slideUp()
	} else {
		copy(b.lines[b.scrollTop:b.scrollBottom], b.lines[b.scrollTop+1:b.scrollBottom+1])
	}
	if len(top.cells) != t.cols {
		top.resize(t.cols, a)
	}
	top.fill(a)
	top.wrapped = wrapped
	b.lines[b.scrollBottom] = top
}

// slideUp moves the whole screen up a line by moving the window b.lines
// is of its backing array one slot on, instead of copying every row's
// pointer (a scroll per line of output makes that copy a fifth of a
// flood's parse). The caller then sets the bottom row. When the backing
// array is used up the window is copied back to the start of base, once
// every rows lines.
func (b *buffer) slideUp() {
	n := len(b.lines)
	// The slot left behind must not keep its line alive.
	b.lines[0] = nil
	if cap(b.lines) > n {
		b.lines = b.lines[1 : n+1]
		return
	}
	if cap(b.base) < 2*n {
		b.base = make([]*line, 2*n)
	}
	base := b.base[:cap(b.base)]
	copy(base, b.lines[1:])
	clear(base[n-1:])
	b.lines = base[:n]
}
