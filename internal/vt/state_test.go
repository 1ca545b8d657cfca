package vt

import (
	"strings"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// stateOf converts the model to the contract the xterm.js renderer fills.
func stateOf(t *Terminal) xtermjs.State {
	b := t.buf
	st := xtermjs.State{
		Rows:          t.rows,
		Cols:          t.cols,
		Buffer:        "normal",
		CursorX:       b.x,
		CursorY:       b.y,
		CursorVisible: !t.modes.cursorHidden,
		CursorStyle:   "block",
		CursorBlink:   t.modes.optBlink,
		Title:         t.title,
		ScrollTop:     b.scrollTop,
		ScrollBottom:  b.scrollBottom,
		SavedX:        b.saved.x,
		SavedY:        b.saved.y,
		GL:            t.gl,
		Tabs:          []int{},
	}
	if t.altActive {
		st.Buffer = "alternate"
	}
	switch t.modes.cursorStyle {
	case cursorUnderline:
		st.CursorStyle = "underline"
	case cursorBar:
		st.CursorStyle = "bar"
	}
	if t.modes.blinkSet {
		st.CursorBlink = t.modes.cursorBlink
	}
	m := t.modes
	st.Modes = xtermjs.Modes{
		ApplicationCursorKeys: m.appCursor,
		ApplicationKeypad:     m.appKeypad,
		BracketedPaste:        m.bracketedPaste,
		Insert:                m.insert,
		Origin:                m.origin,
		Wraparound:            m.wraparound,
		ReverseWraparound:     m.reverseWrap,
		SendFocus:             m.sendFocus,
		MouseTracking:         [...]string{"none", "x10", "vt200", "drag", "any"}[m.mouse],
		MouseEncoding:         [...]string{"default", "sgr", "sgr_pixels"}[m.mouseEnc],
	}
	ln := &linkNumbers{t: t, index: map[uint32]int{}}
	st.Lines, st.Wrapped = linesOf(b.lines, ln)
	if t.altActive {
		st.NormalLines, _ = linesOf(t.normal.lines, ln)
	}
	var l line
	for i := 0; i < t.sb.len(); i++ {
		t.sb.decode(i, &l)
		st.Scrollback = append(st.Scrollback, lineText(&l))
		st.ScrollbackWrapped = append(st.ScrollbackWrapped, l.wrapped)
	}
	pa := t.pen.attrs()
	st.Pen = xtermjs.Cell{FG: colorOf(pa.fg), BG: colorOf(pa.bg), Flags: pa.flags & visibleFlags, Underline: pa.ul,
		Link: ln.of(t.pen.link), UnderlineColor: colorOf(t.pen.ulColor)}
	var sbl []*line
	for i := 0; i < t.sb.len(); i++ {
		l := &line{}
		t.sb.decode(i, l)
		sbl = append(sbl, l)
	}
	if len(sbl) > 0 {
		st.ScrollbackCells, _ = linesOf(sbl, ln)
	} else {
		st.ScrollbackCells = [][]xtermjs.Cell{}
	}
	st.Links = ln.list
	for g, cs := range t.charsets {
		if cs != 0 {
			st.Charsets[g] = string(rune(cs))
		}
	}
	for x, on := range b.tabs {
		if on {
			st.Tabs = append(st.Tabs, x)
		}
	}
	return st
}

const visibleFlags = attrProtected - 1

func colorOf(c color) int32 {
	switch c & colorMode {
	case colorP16:
		return int32(c & 0xff)
	case colorP256:
		return xtermjs.ColorP256 | int32(c&0xff)
	case colorRGB:
		return xtermjs.ColorRGB | int32(c&0xffffff)
	}
	return xtermjs.ColorDefault
}

// linkNumbers numbers links by first appearance, as render.js does.
type linkNumbers struct {
	t     *Terminal
	index map[uint32]int
	list  []xtermjs.Link
}

func (n *linkNumbers) of(l uint32) int {
	if l == 0 {
		return 0
	}
	if i, ok := n.index[l]; ok {
		return i
	}
	d := n.t.ext.link(l)
	n.list = append(n.list, xtermjs.Link{URI: d.uri, ID: d.id})
	n.index[l] = len(n.list)
	return len(n.list)
}

func linesOf(ls []*line, ln *linkNumbers) ([][]xtermjs.Cell, []bool) {
	out := make([][]xtermjs.Cell, len(ls))
	wrapped := make([]bool, len(ls))
	for y, l := range ls {
		row := make([]xtermjs.Cell, len(l.cells))
		for x, c := range l.cells {
			var ext extData
			if s := c.attrs().slot(); s != 0 {
				ext = ln.t.ext.get(s)
			}
			row[x] = xtermjs.Cell{
				Chars: l.text(x), Width: int(c.width()),
				FG: colorOf(c.fg), BG: colorOf(c.bg), Flags: c.flags & visibleFlags, Underline: c.ul,
				Link: ln.of(ext.link), UnderlineColor: colorOf(ext.ul),
			}
		}
		out[y] = row
		wrapped[y] = l.wrapped
	}
	return out, wrapped
}

// lineText is xterm.js translateToString(true).
func lineText(l *line) string {
	var sb strings.Builder
	end := l.trimmedLength()
	for x := 0; x < end && x < len(l.cells); {
		s := l.text(x)
		if s == "" {
			s = " "
		}
		sb.WriteString(s)
		x += max(int(l.cells[x].width()), 1)
	}
	return sb.String()
}
