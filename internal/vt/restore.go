package vt

// The end of a snapshot: the charsets and the pen. Most states are set
// with designations, shifts, SGR and OSC 8; two are left only by DECRC,
// which restores the saved cursor's colours and flags (xterm.js's
// extended-attributes flag among them) and its charset, apart from the
// pen's underline style, link and the designations. The snapshot then does
// DECRC too, from the saved cursor it has already set.

// bySGR reports whether SGR and OSC 8 can make pen p: they keep the
// extended-attributes flag set exactly while the pen holds an underline
// style or a link, and the underline flag exactly while it holds a style.
func (p pen) bySGR() bool {
	return p.hasExt == (p.ulStyle != 0 || p.link != 0) && (p.flags&attrUnderline != 0) == (p.ulStyle != 0)
}

// needsRestore reports whether the snapshot ends with DECRC: for a pen
// only DECRC makes, or GL's charset restored apart from its designation.
func (s *snapshotter) needsRestore() bool {
	t := s.t
	return !t.pen.bySGR() || t.active != t.charsets[t.gl]
}

// finalPen gives the receiver the model's pen (colours, flags, the link it
// holds and the underline style it keeps: a link shows its cells'
// underline dashed, whatever the style, and the style shows again once the
// link closes) and, with rc, the charset DECRC restored.
func (s *snapshotter) finalPen(rc bool) {
	t := s.t
	p := t.pen
	sv := t.buf.saved
	if !rc {
		s.sgrUL(p.sgrAttrs(), p.ulColor)
		s.setLink(p.link)
		return
	}
	if p.bySGR() {
		if sv.charset != t.active {
			s.lose("charset restored by DECRC differs from the designation and the saved one")
		}
		s.restore()
		s.sgrUL(p.sgrAttrs(), p.ulColor)
		s.setLink(p.link)
		return
	}
	if p.hasExt != sv.hasExt || p.flags&attrUnderline != sv.flags&attrUnderline {
		s.lose("pen's extended attributes as only DECRC leaves them, from another saved cursor")
		s.sgrUL(p.sgrAttrs(), p.ulColor)
		s.setLink(p.link)
		return
	}
	// The style, underline colour and link first (SGR 0 clears the style
	// and colour, 4:N and 58 set them), then DECRC for the two flags, then
	// SGR that leaves them alone for the colours and the other flags the
	// program changed since.
	var a attrs
	if p.ulStyle != 0 {
		a = attrs{flags: attrUnderline, ul: p.ulStyle}
	}
	s.sgrUL(a, p.ulColor)
	s.setLink(p.link)
	s.restore()
	s.sgrDelta(attrs{fg: sv.fg, bg: sv.bg, flags: sv.flags}, attrs{fg: p.fg, bg: p.bg, flags: p.flags})
	if t.active != sv.charset {
		if t.active != t.charsets[t.gl] {
			s.lose("charset restored by DECRC differs from the designation and the saved one")
		}
		s.shiftGL()
	}
}

// onlyByDECRC reports whether a cell with attributes a can only be printed
// with a pen that DECRC made: xterm.js's extended-attributes flag set with
// no underline style and no link (as DECALN and a pen DECRC restored leave
// cells), which shows as an underline flag without a style, or keeps an
// underline colour on a cell not underlined.
func (s *snapshotter) onlyByDECRC(a attrs) bool {
	if a.flags&attrUnderline != 0 {
		return a.ul == 0
	}
	sl := a.slot()
	return sl != 0 && s.t.ext.get(sl).link == 0
}

// extendedByDECRC sets the receiver's pen to a, which only DECRC makes
// (onlyByDECRC): save the pen with the flag held by an underline style or
// a link no cell shows, drop the style or link, restore. That takes the
// saved cursor of the screen being painted, which is set again after; it
// cannot be while the cursor waits to wrap (DECRC would cancel the wrap)
// nor once the normal screen's saved row has scrolled above the receiver's
// screen.
func (s *snapshotter) extendedByDECRC(a attrs, alt, wrapping bool, i int) {
	if a == s.full {
		return
	}
	t := s.t
	// The receiver's lines above its screen while line i is painted: the
	// saved row must not be among them, as only more will come.
	ybase := min(max(0, i+s.filler-(t.rows-1)), t.sb.max)
	if wrapping || (!alt && t.normal.saved.y < ybase) {
		s.lose("cell with extended attributes only DECRC gives")
		s.pen(a)
		return
	}
	var d extData // no link (it would show an underline dashed): a colour
	if sl := a.slot(); sl != 0 {
		d = t.ext.get(sl)
	}
	b := a.withSlot(0)
	if a.flags&attrUnderline != 0 {
		s.setLink(0)
		b.ul = 1
		s.sgrUL(b, d.ul)
		s.out = append(s.out, "\x1b7\x1b[24m\x1b8"...)
	} else {
		s.sgrUL(b, d.ul)
		s.out = append(s.out, "\x1b]8;;x\x1b\\\x1b7\x1b]8;;\x1b\\\x1b8"...)
		s.link = 0
	}
	s.cur = a.withSlot(0)
	s.full = a
	s.scratched = true
	if !alt {
		s.savedDone = false
	}
}

// sgrDelta changes the receiver's pen from colours and flags from to to's
// without SGR 0 or an underline parameter, which would reset the
// extended-attributes flag; from and to have the same underline flag.
func (s *snapshotter) sgrDelta(from, to attrs) {
	if from.flags&attrProtected != to.flags&attrProtected {
		if to.flags&attrProtected != 0 {
			s.out = append(s.out, "\x1b[1\"q"...)
		} else {
			s.out = append(s.out, "\x1b[0\"q"...)
		}
	}
	start := len(s.out)
	s.out = append(s.out, "\x1b["...)
	mark := len(s.out)
	has := from.flags
	if gone := from.flags &^ to.flags; gone&(attrBold|attrDim) != 0 {
		s.out = append(s.out, ";22"...) // clears both
		has &^= attrBold | attrDim
	}
	for _, fl := range [...]struct {
		bit     uint16
		on, off string
	}{{attrBold, ";1", ""}, {attrDim, ";2", ""}, {attrItalic, ";3", ";23"}, {attrBlink, ";5", ";25"},
		{attrInverse, ";7", ";27"}, {attrInvisible, ";8", ";28"}, {attrStrikethrough, ";9", ";29"},
		{attrOverline, ";53", ";55"}} {
		switch {
		case to.flags&fl.bit != 0 && has&fl.bit == 0:
			s.out = append(s.out, fl.on...)
		case to.flags&fl.bit == 0 && has&fl.bit != 0:
			s.out = append(s.out, fl.off...)
		}
	}
	if from.fg != to.fg {
		if to.fg&colorMode == colorDefault {
			s.out = append(s.out, ";39"...)
		}
		s.color(to.fg, 30, 90, 38)
	}
	if from.bg != to.bg {
		if to.bg&colorMode == colorDefault {
			s.out = append(s.out, ";49"...)
		}
		s.color(to.bg, 40, 100, 48)
	}
	if len(s.out) == mark {
		s.out = s.out[:start]
		return
	}
	s.out = append(s.out[:mark], s.out[mark+1:]...) // the first ';'
	s.out = append(s.out, 'm')
}

// sgrAttrs is what SGR writes for p: its colours and flags, and its
// underline style as kept (not shown dashed under a link).
func (p pen) sgrAttrs() attrs {
	a := attrs{fg: p.fg, bg: p.bg, flags: p.flags}
	if p.flags&attrUnderline != 0 {
		a.ul = 1
		if p.hasExt {
			a.ul = p.ulStyle
		}
	}
	return a
}

// restore is DECRC in the receiver, whose saved cursor is the model's.
func (s *snapshotter) restore() {
	s.out = append(s.out, "\x1b8"...)
	s.cur = noCell // unknown: the next SGR is written in full
	s.full = noCell
}

func (s *snapshotter) setCharsets() {
	t := s.t
	for g, cs := range t.charsets {
		if cs != 0 {
			s.out = append(s.out, 0x1b, "()*+"[g], byte(cs))
		}
	}
	if t.gl != 0 {
		s.shiftGL()
	}
}

// shiftGL invokes the model's G set into GL, which maps its designation.
func (s *snapshotter) shiftGL() {
	switch s.t.gl {
	case 0:
		s.out = append(s.out, 0x0f)
	case 1:
		s.out = append(s.out, 0x0e)
	case 2:
		s.out = append(s.out, "\x1bn"...)
	case 3:
		s.out = append(s.out, "\x1bo"...)
	}
}
