package main

import (
	"bytes"
	"strconv"
)

// The status line borrows the terminal's last row while rpty reconnects.
// Where the predictor's model of the screen is anchored to the terminal
// (its rows are the terminal's rows: it has seen the screen cleared with
// the cursor home, which every vt greeting and every replay starts with),
// the row is painted back from the model once reconnected, and the cursor
// and pen are put back from the model too, so the program's own saved
// cursor (DECSC) is left alone. Elsewhere the row is cleared, and
// DECSC/DECRC bracket the drawing.

// anchors are sequences after which the cursor is home on a cleared
// screen, in the model and in the terminal alike.
var anchors = [][]byte{
	[]byte("\x1bc"),
	[]byte("\x1b[H\x1b[2J"),
	[]byte("\x1b[2J\x1b[H"),
	[]byte("\x1b[H\x1b[J"),
}

// noteAnchors marks the model anchored if data clears the screen with the
// cursor home. A sequence split across two writes is missed: the model
// then stays unanchored until the next, which only costs the fallback.
func (p *predictor) noteAnchors(data []byte) {
	if p.anchored {
		return
	}
	for _, a := range anchors {
		if bytes.Contains(data, a) {
			p.anchored = true
			return
		}
	}
}

// rowsExact reports whether the model's rows are the terminal's, at
// rows x cols, and its state lets a row be painted and the cursor and pen
// be put back exactly: no guess shown, text printed as itself in place,
// the parser between sequences, the cursor not waiting to wrap, and a pen
// whose link (if any) can be opened again as the same link.
func (p *predictor) rowsExact(rows, cols int) bool {
	m := p.model
	r, c := m.Size()
	_, x := m.Cursor()
	md := m.Modes()
	uri, id := m.PenLink()
	return p.anchored && r == rows && c == cols && len(p.shown) == 0 && !p.moved &&
		m.Idle() && m.PlainCharset() && !md.Insert && !md.Origin && x < c && (uri == "" || id != "")
}

// appendRow appends the bytes that paint the terminal's row y as the
// model has it, cell by cell with each cell's attributes and link, or
// returns false if a cell holds a link without an id, which painting would
// turn into another link.
func (p *predictor) appendRow(out []byte, y int) ([]byte, bool) {
	m := p.model
	_, cols := m.Size()
	at := -1 // the terminal's cursor column on row y, if known
	var pen, last []byte
	for x := range cols {
		text, w := m.Cell(y, x)
		if w == 0 {
			continue // covered by the wide character before it
		}
		if uri, id := m.CellLink(y, x); uri != "" && id == "" {
			return out, false
		}
		if x != at {
			out = cup(out, y, x)
		}
		if pen = m.AppendCellPen(pen[:0], y, x); !bytes.Equal(pen, last) {
			out = append(out, pen...)
			last = append(last[:0], pen...)
		}
		if text == "" {
			// An empty cell is erased, not written with a space: a
			// terminal may keep the two apart (tmux does).
			out = append(out, "\x1b[X"...)
			at = -1
			continue
		}
		out = append(out, text...)
		at = x + w
	}
	return out, true
}

// appendCursorAndPen appends the bytes that put the terminal's cursor and
// pen back to the model's.
func (p *predictor) appendCursorAndPen(out []byte) []byte {
	y, x := p.model.Cursor()
	out = cup(out, y, x)
	return p.model.AppendPen(out)
}

// statusRow returns the bytes that draw the status line on the last of
// rows (line, already cut to fit) or, with line empty, paint that row back
// as the program drew it; false where the model cannot say what the row
// holds or where the cursor goes.
func (p *predictor) statusRow(line string, rows, cols int) ([]byte, bool) {
	if !p.rowsExact(rows, cols) {
		return nil, false
	}
	var out []byte
	if line == "" {
		var ok bool
		if out, ok = p.appendRow(out, rows-1); !ok {
			return nil, false
		}
	} else {
		out = cup(out, rows-1, 0)
		out = append(out, "\x1b[0m\x1b]8;;\x1b\\\x1b[2K\x1b[7m"...)
		out = append(out, line...)
		out = append(out, "\x1b[0m"...)
	}
	return p.appendCursorAndPen(out), true
}

// cup appends CUP, moving the cursor to row y and column x (from 0).
func cup(out []byte, y, x int) []byte {
	out = append(out, "\x1b["...)
	out = strconv.AppendInt(out, int64(y+1), 10)
	out = append(out, ';')
	out = strconv.AppendInt(out, int64(x+1), 10)
	return append(out, 'H')
}
