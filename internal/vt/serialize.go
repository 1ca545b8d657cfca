package vt

import "strconv"

// AppendSnapshot appends to dst a byte stream that, written to a terminal
// of the same size and scrollback in any prior state, reproduces this
// one: it cancels any sequence in progress and resets the terminal (RIS),
// then writes the scrollback and the normal screen (soft-wrapped lines
// wrap again), the alternate screen on top when it is active, and sets the
// tab stops, scroll region, saved cursors, modes, charsets, title, pen and
// cursor. It contains no query. Deviations are listed in the package doc.
func (t *Terminal) AppendSnapshot(dst []byte) []byte {
	out, _ := t.snapshot(dst)
	return out
}

// snapshot is AppendSnapshot that also says what, if anything, the
// snapshot could not reproduce (the deviations of doc.go).
func (t *Terminal) snapshot(dst []byte) ([]byte, []string) {
	s := snapshotter{t: t, out: dst}
	s.out = append(s.out, "\x18\x1bc"...)
	s.writeNormal()
	nb := &t.normal
	s.setTabs(nb)
	s.setRegion(nb)
	if !s.savedDone {
		s.setSaved(nb, t.sb.len(), -1)
	}
	if t.altActive {
		// Enter the alternate screen at the normal cursor with a default
		// pen (its blank fill takes the pen's background), then paint it.
		s.moveTo(nb.y, min(nb.x, t.cols-1))
		s.sgr(attrs{})
		s.out = append(s.out, "\x1b[?1047h"...)
		s.scratched = false
		s.writeAlt()
		s.setTabs(&t.alt)
		s.setRegion(&t.alt)
		s.setSaved(&t.alt, 0, -1)
	}
	s.setModesAndCursor()
	s.out = t.appendPending(s.out)
	s.out = append(s.out, t.utf8[:t.utf8Len]...)
	return s.out, s.lossy
}

type snapshotter struct {
	t   *Terminal
	out []byte
	// cur is the pen the receiving terminal has (a snapshot starts from
	// RIS: the default pen), its extended attributes aside: ul is the
	// underline colour and link the link it holds (0 none).
	cur  attrs
	ul   color
	link uint32
	// full is the attributes of the cell pen last made the receiver's pen
	// print, or noCell once anything changed it.
	full attrs
	// opened are the links without an id opened so far: opening one again
	// would make another link.
	opened map[uint32]bool
	// filler is 1 when a filler line was painted before the oldest line.
	filler int
	// savedDone is set once the normal screen's saved cursor is set.
	savedDone bool
	// scratched is set once the screen being painted used its saved
	// cursor to make a pen (see extendedByDECRC): it must be set
	// after, even to its initial state.
	scratched bool
	// lossy lists what could not be reproduced.
	lossy []string
}

func (s *snapshotter) lose(why string) {
	if len(s.lossy) < 8 {
		s.lossy = append(s.lossy, why)
	}
}

func (s *snapshotter) csi(args ...int) {
	s.out = append(s.out, "\x1b["...)
	for i, a := range args {
		if i > 0 {
			s.out = append(s.out, ';')
		}
		s.out = strconv.AppendInt(s.out, int64(a), 10)
	}
}

func (s *snapshotter) moveTo(y, x int) {
	s.csi(y+1, x+1)
	s.out = append(s.out, 'H')
}

// setTabs clears the stops and sets the model's.
func (s *snapshotter) setTabs(b *buffer) {
	s.out = append(s.out, "\x1b[3g"...)
	for x, on := range b.tabs {
		if on && x >= s.t.cols {
			s.lose("tab stop past the last column")
		}
		if on && x < s.t.cols {
			s.csi(x + 1)
			s.out = append(s.out, "G\x1bH"...)
		}
	}
}

func (s *snapshotter) setRegion(b *buffer) {
	if b.scrollTop != 0 || b.scrollBottom != s.t.rows-1 {
		s.csi(b.scrollTop+1, b.scrollBottom+1)
		s.out = append(s.out, 'r')
	}
}

// saveWhilePainting sets the normal screen's saved cursor while line i is
// about to be painted at column 0, if the receiver's scrollback then has
// the size that makes DECSC record the model's (absolute) saved row.
func (s *snapshotter) saveWhilePainting(i int) {
	t := s.t
	if s.savedDone {
		return
	}
	sv := t.normal.saved
	if sv == (savedCursor{}) && !s.scratched {
		s.savedDone = true
		return
	}
	w := i + s.filler
	row := min(w, t.rows-1)
	ybase := min(max(0, w-(t.rows-1)), t.sb.max)
	if d := sv.y - ybase; d >= 0 && d < t.rows {
		s.setSaved(&t.normal, ybase, row)
		s.savedDone = true
	}
}

// setSaved makes DECSC save what the model's buffer has saved: cursor,
// pen colours and flags, and charset. The receiver has ybase lines above
// its screen; with back >= 0 the cursor returns to column 0 of that row.
func (s *snapshotter) setSaved(b *buffer, ybase, back int) {
	sv := b.saved
	if sv == (savedCursor{}) && !s.scratched {
		return // what RIS and clearing the alternate screen leave
	}
	y := clampInt(sv.y-ybase, 0, s.t.rows-1)
	if y != sv.y-ybase || sv.x >= s.t.cols {
		s.lose("saved cursor out of reach")
	}
	s.moveTo(y, clampInt(sv.x, 0, s.t.cols-1))
	p := pen{fg: sv.fg, bg: sv.bg, flags: sv.flags}
	s.sgr(p.attrs())
	// DECSC also saves xterm.js's extended-attributes flag (it decides
	// whether cells printed after DECRC get the pen's underline style and
	// link): set while the receiver's pen holds a link or, after the SGR
	// above, whenever it is underlined.
	switch {
	case sv.flags&attrUnderline != 0:
		if !sv.hasExt {
			s.lose("saved cursor underlined without extended attributes")
		}
	case sv.hasExt && s.link == 0:
		// A link no cell will show holds the flag.
		s.out = append(s.out, "\x1b]8;;x\x1b\\"...)
		s.link = throwawayLink
		s.full = noCell
	case !sv.hasExt:
		s.setLink(0)
	}
	if sv.charset != 0 {
		s.out = append(s.out, "\x1b("...)
		s.out = append(s.out, byte(sv.charset))
	}
	s.out = append(s.out, "\x1b7"...)
	if sv.charset != 0 {
		s.out = append(s.out, "\x1b(B"...)
	}
	if back >= 0 {
		s.moveTo(back, 0)
	}
}

// setModesAndCursor sets the modes, title, charsets, pen and finally the
// cursor, last so that a combining mark arriving next still joins the
// character before the cursor when it would here.
func (s *snapshotter) setModesAndCursor() {
	t := s.t
	m := t.modes
	b := t.buf
	set := func(mode int, on bool) {
		s.out = append(s.out, "\x1b[?"...)
		s.out = strconv.AppendInt(s.out, int64(mode), 10)
		if on {
			s.out = append(s.out, 'h')
		} else {
			s.out = append(s.out, 'l')
		}
	}
	if m.origin {
		set(6, true)
	}
	// Options RIS keeps, then modes.
	set(12, m.optBlink)
	if m.convertEOL {
		s.out = append(s.out, "\x1b[20h"...)
	} else {
		s.out = append(s.out, "\x1b[20l"...)
	}
	set(25, !m.cursorHidden)
	for _, md := range [...]struct {
		on   bool
		mode int
	}{{m.appCursor, 1}, {m.appKeypad, 66}, {m.bracketedPaste, 2004}, {m.reverseWrap, 45},
		{m.sendFocus, 1004}, {m.syncOutput, 2026}} {
		if md.on {
			set(md.mode, true)
		}
	}
	if !m.wraparound {
		set(7, false)
	}
	if m.mouse != mouseNone {
		set([...]int{0, 9, 1000, 1002, 1003}[m.mouse], true)
	}
	if m.mouseEnc != mouseEncDefault {
		set([...]int{0, 1006, 1016}[m.mouseEnc], true)
	}
	if m.cursorStyle != cursorDefault || m.blinkSet {
		p := [...]int{7, 1, 3, 5}[m.cursorStyle] // 7: only the blink flag
		if !m.cursorBlink {
			p++
		}
		s.csi(p)
		s.out = append(s.out, " q"...)
	}
	s.out = append(s.out, "\x1b]2;"...)
	s.out = append(s.out, t.title...)
	s.out = append(s.out, '\a')
	top := 0
	if m.origin {
		top = b.scrollTop
	}
	pa := t.penAttrs
	if b.x > t.cols {
		s.lose("cursor past the right margin")
	}
	if m.origin && (b.y < b.scrollTop || b.y > b.scrollBottom) {
		s.lose("cursor outside the region in origin mode")
	}
	jx := b.x - t.joinWidth
	rc := s.needsRestore()
	switch {
	case t.joinWidth != 0 && !m.insert && jx >= 0 && jx < t.cols && throughTable(firstRune(b.lines[b.y], jx), t.table) >= 0 &&
		(jx == 0 || b.lines[b.y].cells[jx-1].width() != 2) &&
		b.lines[b.y].cells[jx].ch != 0 && int(b.lines[b.y].cells[jx].width()) == t.joinWidth &&
		b.lines[b.y].cells[jx].attrs() == pa:
		// Print the character before the cursor again: same screen, and
		// the receiver's parser knows it as the one to join to. It goes
		// through GL's charset (once any DECRC has restored the model's),
		// so the charsets and the pen can be set first.
		s.setCharsets()
		s.finalPen(rc)
		s.moveTo(b.y-top, jx)
		s.printThrough(b.lines[b.y], jx, t.table)
	case rc:
		// DECRC moves the cursor: it goes first, and a repaint would
		// change the pen it restored.
		s.setCharsets()
		s.finalPen(rc)
		s.moveTo(b.y-top, min(b.x, t.cols-1))
		if b.x >= t.cols {
			s.lose("pending wrap with a pen or charset only DECRC gives")
		}
	default:
		s.moveTo(b.y-top, min(b.x, t.cols-1))
		if b.x >= t.cols {
			s.repaintLast(b, top)
		}
		// After the repaint, which prints the character untranslated;
		// designations leave a pending wrap alone.
		s.setCharsets()
		s.finalPen(false)
	}
	if m.insert {
		s.out = append(s.out, "\x1b[4h"...)
	}
}

// throughTable returns the code point to print for r to show through
// charset table (nil for ASCII), or -1 if none does.
func throughTable(r rune, table *charsetMap) rune {
	if table == nil {
		return r
	}
	if r >= 0x20 && r < 0x7f && table[r-0x20] == 0 {
		return r // mapped to itself
	}
	for i, m := range table {
		if m == r {
			return rune(0x20 + i)
		}
	}
	if r >= 0x7f {
		return r // not translated
	}
	return -1
}

// printThrough prints cell x of l again while GL maps through table.
func (s *snapshotter) printThrough(l *line, x int, table *charsetMap) {
	c := &l.cells[x]
	if c.ch != combinedRune {
		s.out = appendRune(s.out, throughTable(c.ch, table))
		return
	}
	for i, r := range l.combined[x] {
		if i == 0 {
			r = throughTable(r, table)
		}
		s.out = appendRune(s.out, r)
	}
}

func (s *snapshotter) printCell(l *line, x int) {
	if c := &l.cells[x]; c.ch == combinedRune {
		s.out = append(s.out, l.combined[x]...)
	} else {
		s.out = appendRune(s.out, c.ch)
	}
}

// repaintLast prints the last column's character again, leaving the
// cursor in the pending-wrap state past it.
func (s *snapshotter) repaintLast(b *buffer, top int) {
	t := s.t
	l := b.lines[b.y]
	x := t.cols - 1
	if x > 0 && l.cells[x].width() == 0 && l.cells[x-1].width() == 2 {
		x--
		s.moveTo(b.y-top, x)
	}
	c := &l.cells[x]
	if c.ch == 0 {
		s.lose("pending wrap after an empty last cell")
		return
	}
	if x > 0 && l.cells[x-1].width() == 2 {
		s.lose("pending wrap after a wide character without its right half")
	}
	if s.onlyByDECRC(c.attrs()) {
		// Its pen would take a saved cursor already set.
		s.lose("pending wrap after a cell with extended attributes only DECRC gives")
	}
	s.pen(c.attrs())
	s.printCell(l, x)
}
