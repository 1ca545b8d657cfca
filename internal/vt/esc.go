package vt

import "unicode/utf8"

// escDispatch runs the ESC sequence ending in final.
func (t *Terminal) escDispatch(final byte) {
	b := t.buf
	switch t.collect {
	case 0:
		switch final {
		case '7':
			t.saveCursor()
		case '8':
			t.restoreCursor()
		case 'D':
			t.index()
		case 'E':
			b.x = 0
			t.index()
		case 'H':
			b.setTab(b.x, true)
		case 'M':
			t.reverseIndex()
		case '=':
			t.modes.appKeypad = true
		case '>':
			t.modes.appKeypad = false
		case 'c':
			t.fullReset()
		case 'n', '}':
			t.setGL(2)
		case 'o', '|':
			t.setGL(3)
		case '~':
			t.setGL(1)
		}
	case '%':
		if final == '@' || final == 'G' {
			t.setGL(0)
			t.designate(0, 0)
		}
	case '(', ')', '*', '+', '-', '.':
		if cs, ok := charsetOf(final); ok {
			t.designate(gSlot(byte(t.collect)), cs)
		}
	case '#':
		if final == '8' {
			t.screenAlignment()
		}
	}
}

func (t *Terminal) fullReset() {
	t.state = stGround
	t.params.reset()
	t.collect = 0
	t.oscMode = oscNone
	t.reset()
}

func (t *Terminal) screenAlignment() {
	a := t.penAttrs.withSlot(0)
	if t.pen.hasExt {
		a.ul = 0 // the fill cell carries no extended attributes (nor link)
	}
	t.setCursor(0, 0)
	b := t.buf
	fill := func(ln *line) {
		for i := range ln.cells {
			ln.cells[i].put('E', a, 0)
		}
		ln.touchAll()
		ln.wrapped = false
	}
	// xterm.js fills rows-many lines from the cursor's row (the region top
	// in origin mode), indexing its circular line list past its end: an
	// index past the list's capacity wraps around to its oldest lines,
	// which are filled too (assuming the list was never trimmed at its
	// start, as ED 3 does), and one in its unused capacity finds nothing.
	ybase := t.ybase()
	maxLen := t.rows
	if !t.altActive {
		maxLen += t.scrollbackMax
	}
	var tmp line
	for off := 0; off < t.rows; off++ {
		abs := (ybase + b.y + off) % maxLen
		if abs >= ybase+t.rows {
			continue
		}
		if abs >= ybase {
			fill(b.lines[abs-ybase])
			continue
		}
		t.sb.decode(abs, &tmp)
		fill(&tmp)
		t.sb.replace(abs, &tmp)
	}
	t.setCursor(0, 0)
}

func (t *Terminal) setGL(g int) {
	t.gl = g
	t.setActive(t.charsets[g])
}

func (t *Terminal) designate(g int, cs charset) {
	t.charsets[g] = cs
	if t.gl == g {
		t.setActive(cs)
	}
}

func (t *Terminal) setActive(cs charset) {
	t.active = cs
	t.table = charsetTable(cs)
}

// OSC parsing modes.
const (
	oscNone uint8 = iota
	oscIdent
	oscPayload
	oscAbort
)

func (t *Terminal) oscStart() {
	t.osc = t.osc[:0]
	t.oscID = -1
	t.oscMode = oscIdent
}

func (t *Terminal) oscPut(r rune) {
	switch t.oscMode {
	case oscIdent:
		switch {
		case r == ';':
			t.oscMode = oscPayload
		case r < '0' || r > '9':
			t.oscMode = oscAbort
		default:
			if t.oscID < 0 {
				t.oscID = 0
			}
			if t.oscID < 1<<24 {
				t.oscID = t.oscID*10 + (r - '0')
			}
		}
	case oscPayload:
		if len(t.osc) >= maxOSC {
			t.oscMode = oscAbort
			return
		}
		if r < 0x80 {
			t.osc = append(t.osc, byte(r))
		} else {
			t.osc = appendRune(t.osc, r)
		}
	}
}

func (t *Terminal) oscEnd(success bool) {
	mode := t.oscMode
	t.oscMode = oscNone
	if mode == oscNone || mode == oscAbort || !success {
		return
	}
	switch t.oscID {
	case 0, 2:
		if string(t.osc) != t.title {
			t.title = string(t.osc)
		}
	case 8:
		t.hyperlink(t.osc)
	}
}

func appendRune(b []byte, r rune) []byte { return utf8.AppendRune(b, r) }

// gSlot is the G set an intermediate designates.
func gSlot(c byte) int {
	switch c {
	case ')', '-':
		return 1
	case '*', '.':
		return 2
	case '+':
		return 3
	}
	return 0
}
