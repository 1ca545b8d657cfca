package vt

import "strconv"

// sgr applies SGR parameters to the pen, as xterm.js does (including its
// reading of colon sub-parameters).
func (t *Terminal) sgr() {
	p := &t.params
	pn := &t.pen
	for i := 0; i < p.n; i++ {
		v := p.get(i)
		switch {
		case v >= 30 && v <= 37:
			pn.fg = colorP16 | color(v-30)
		case v >= 40 && v <= 47:
			pn.bg = colorP16 | color(v-40)
		case v >= 90 && v <= 97:
			pn.fg = colorP16 | color(v-90+8)
		case v >= 100 && v <= 107:
			pn.bg = colorP16 | color(v-100+8)
		case v == 0:
			pn.fg, pn.bg = 0, 0
			pn.flags = 0
			pn.ulStyle = 0
			pn.ulColor = colorDefault
			pn.hasExt = false
			pn.updateExt()
		case v == 1:
			pn.flags |= attrBold
		case v == 2:
			pn.flags |= attrDim
		case v == 3:
			pn.flags |= attrItalic
		case v == 4:
			style := int32(1)
			if s := p.subs(i); len(s) > 0 {
				style = s[0]
			}
			pn.flags |= attrUnderline
			t.underline(style)
		case v == 5:
			pn.flags |= attrBlink
		case v == 7:
			pn.flags |= attrInverse
		case v == 8:
			pn.flags |= attrInvisible
		case v == 9:
			pn.flags |= attrStrikethrough
		case v == 21:
			t.underline(2)
		case v == 22:
			pn.flags &^= attrBold | attrDim
		case v == 23:
			pn.flags &^= attrItalic
		case v == 24:
			pn.flags &^= attrUnderline
			t.underline(0)
		case v == 25:
			pn.flags &^= attrBlink
		case v == 27:
			pn.flags &^= attrInverse
		case v == 28:
			pn.flags &^= attrInvisible
		case v == 29:
			pn.flags &^= attrStrikethrough
		case v == 39:
			pn.fg = 0
		case v == 49:
			pn.bg = 0
		case v == 38 || v == 48 || v == 58:
			i += t.extendedColor(i)
		case v == 59:
			// xterm.js stores -1 in the colour's bits: RGB white.
			pn.ulColor = colorRGB | 0xffffff
			pn.updateExt()
		case v == 53:
			pn.flags |= attrOverline
		case v == 55:
			pn.flags &^= attrOverline
		}
	}
	t.penChanged()
}

func (t *Terminal) underline(style int32) {
	pn := &t.pen
	if style == -1 || style > 5 {
		style = 1
	}
	pn.ulStyle = uint8(style)
	pn.flags |= attrUnderline
	if style == 0 {
		pn.flags &^= attrUnderline
	}
	pn.updateExt()
}

// extendedColor reads 38/48/58 colour parameters at i the way xterm.js
// does and returns how many parameters it used beyond i.
func (t *Terminal) extendedColor(pos int) int {
	p := &t.params
	accu := [6]int32{0, 0, -1, 0, 0, 0}
	cSpace, advance := 0, 0
	for {
		accu[advance+cSpace] = p.vals[pos+advance]
		if subs := p.subs(pos + advance); len(subs) > 0 {
			for i := 0; ; {
				if accu[1] == 5 {
					cSpace = 1
				}
				if k := advance + i + 1 + cSpace; k < len(accu) {
					accu[k] = subs[i]
				}
				i++
				if !(i < len(subs) && i+advance+1+cSpace < len(accu)) {
					break
				}
			}
			break
		}
		if (accu[1] == 5 && advance+cSpace >= 2) || (accu[1] == 2 && advance+cSpace >= 5) {
			break
		}
		if accu[1] != 0 {
			cSpace = 1
		}
		advance++
		if !(advance+pos < p.n && advance+cSpace < len(accu)) {
			break
		}
	}
	for i := 2; i < len(accu); i++ {
		if accu[i] == -1 {
			accu[i] = 0
		}
	}
	var target *color
	switch accu[0] {
	case 38:
		target = &t.pen.fg
	case 48:
		target = &t.pen.bg
	case 58:
		target = &t.pen.ulColor // without updating hasExt, as xterm.js
	default:
		return advance
	}
	switch accu[1] {
	case 2:
		*target = colorRGB | color(accu[3]&0xff)<<16 | color(accu[4]&0xff)<<8 | color(accu[5]&0xff)
	case 5:
		*target = colorP256 | color(accu[3]&0xff)
	}
	return advance
}

// setPrivateMode is DECSET (on) and DECRST.
func (t *Terminal) setPrivateMode(mode int, on bool) {
	m := &t.modes
	switch mode {
	case 1:
		m.appCursor = on
	case 2:
		if on {
			for g := range t.charsets {
				t.designate(g, 0)
			}
		}
	case 6:
		m.origin = on
		t.setCursor(0, 0)
	case 7:
		m.wraparound = on
	case 12:
		m.optBlink = on
	case 45:
		m.reverseWrap = on
	case 66:
		m.appKeypad = on
	case 9, 1000, 1002, 1003:
		if !on {
			m.mouse = mouseNone
			break
		}
		switch mode {
		case 9:
			m.mouse = mouseX10
		case 1000:
			m.mouse = mouseVT200
		case 1002:
			m.mouse = mouseDrag
		default:
			m.mouse = mouseAny
		}
	case 1004:
		m.sendFocus = on
	case 1006:
		m.mouseEnc = mouseEncDefault
		if on {
			m.mouseEnc = mouseEncSGR
		}
	case 1016:
		m.mouseEnc = mouseEncDefault
		if on {
			m.mouseEnc = mouseEncSGRPixels
		}
	case 25:
		m.cursorHidden = !on
	case 1048:
		if on {
			t.saveCursor()
		} else {
			t.restoreCursor()
		}
	case 47, 1047, 1049:
		if on {
			if mode == 1049 {
				t.saveCursor()
			}
			t.activateAlt()
		} else {
			t.activateNormal()
			if mode == 1049 {
				t.restoreCursor()
			}
		}
	case 2004:
		m.bracketedPaste = on
	case 2026:
		m.syncOutput = on
	}
}

func (t *Terminal) activateAlt() {
	if t.altActive {
		return
	}
	a := t.eraseAttrs()
	if len(t.alt.lines) != t.rows {
		t.alt.lines = make([]*line, t.rows)
	}
	for i, l := range t.alt.lines {
		if l == nil {
			t.alt.lines[i] = newLine(t.cols, a)
			continue
		}
		t.blankLine(l, a)
	}
	t.alt.x, t.alt.y = t.normal.x, t.normal.y
	t.altActive = true
	t.buf = &t.alt
}

func (t *Terminal) activateNormal() {
	if !t.altActive {
		return
	}
	t.normal.x, t.normal.y = t.alt.x, t.alt.y
	// xterm.js clears the alternate buffer on leaving it: cursor, region
	// and tab stops start afresh next time (the saved cursor stays).
	t.alt.x, t.alt.y = 0, 0
	t.alt.scrollTop, t.alt.scrollBottom = 0, t.rows-1
	t.setupTabs(&t.alt, -1)
	t.altActive = false
	t.buf = &t.normal
}

// requestMode answers DECRQM (ansi: the ANSI form).
func (t *Terminal) requestMode(p int, ansi bool) {
	if !t.answer {
		return
	}
	const (
		notRecognized = 0
		set           = 1
		reset         = 2
		permSet       = 3
		permReset     = 4
	)
	b2v := func(b bool) int {
		if b {
			return set
		}
		return reset
	}
	m := &t.modes
	v := notRecognized
	if ansi {
		switch p {
		case 2:
			v = permReset
		case 4:
			v = b2v(m.insert)
		case 12:
			v = permSet
		case 20:
			v = b2v(m.convertEOL)
		}
		t.reply("\x1b[", strconv.Itoa(p), ";", strconv.Itoa(v), "$y")
		return
	}
	switch p {
	case 1:
		v = b2v(m.appCursor)
	case 6:
		v = b2v(m.origin)
	case 7:
		v = b2v(m.wraparound)
	case 8:
		v = permSet
	case 9:
		v = b2v(m.mouse == mouseX10)
	case 12:
		v = b2v(m.optBlink)
	case 25:
		v = b2v(!m.cursorHidden)
	case 45:
		v = b2v(m.reverseWrap)
	case 66:
		v = b2v(m.appKeypad)
	case 67, 1005, 1015:
		v = permReset
	case 1000:
		v = b2v(m.mouse == mouseVT200)
	case 1002:
		v = b2v(m.mouse == mouseDrag)
	case 1003:
		v = b2v(m.mouse == mouseAny)
	case 1004:
		v = b2v(m.sendFocus)
	case 1006:
		v = b2v(m.mouseEnc == mouseEncSGR)
	case 1016:
		v = b2v(m.mouseEnc == mouseEncSGRPixels)
	case 1048:
		v = set
	case 47, 1047, 1049:
		v = b2v(t.altActive)
	case 2004:
		v = b2v(m.bracketedPaste)
	case 2026:
		v = b2v(m.syncOutput)
	}
	t.reply("\x1b[?", strconv.Itoa(p), ";", strconv.Itoa(v), "$y")
}
