package vt

import "testing"

// TestInspectReportsWhatWasDrawn pins the inspection API on a screen with
// wide characters, colours, a link and modes.
func TestInspectReportsWhatWasDrawn(t *testing.T) {
	term := New(4, 20, Options{})
	_, _ = term.Write([]byte("ab\x1b[1;31mc\x1b]8;id=x;https://e.x/\x1b\\d\x1b]8;;\x1b\\\x1b[0m漢\r\n\x1b[4h\x1b[?25l\x1b[38;5;200mx"))
	if y, x := term.Cursor(); y != 1 || x != 1 {
		t.Errorf("cursor %d,%d, want 1,1", y, x)
	}
	for _, c := range []struct {
		x     int
		text  string
		width int
	}{{0, "a", 1}, {2, "c", 1}, {4, "漢", 2}, {5, "", 0}, {6, "", 1}} {
		if text, w := term.Cell(0, c.x); text != c.text || w != c.width {
			t.Errorf("cell 0,%d: %q width %d, want %q width %d", c.x, text, w, c.text, c.width)
		}
	}
	if !term.BlankFrom(0, 6) || term.BlankFrom(0, 4) {
		t.Errorf("BlankFrom(0, 6) = %v, BlankFrom(0, 4) = %v", term.BlankFrom(0, 6), term.BlankFrom(0, 4))
	}
	if uri, id := term.CellLink(0, 3); uri != "https://e.x/" || id != "x" {
		t.Errorf("CellLink(0, 3) = %q, %q", uri, id)
	}
	if uri, id := term.CellLink(0, 2); uri != "" || id != "" {
		t.Errorf("CellLink(0, 2) = %q, %q, want none", uri, id)
	}
	if uri, _ := term.PenLink(); uri != "" {
		t.Errorf("PenLink() = %q after the link closed", uri)
	}
	_, _ = term.Write([]byte("\x1b]8;;https://open/\x1b\\"))
	if uri, id := term.PenLink(); uri != "https://open/" || id != "" {
		t.Errorf("PenLink() = %q, %q, want the open link", uri, id)
	}
	m := term.Modes()
	if !m.Insert || m.CursorVisible || !m.AutoWrap || m.Origin || m.AppCursor {
		t.Errorf("modes %+v", m)
	}
	if term.AltScreen() || !term.Idle() || !term.PlainCharset() {
		t.Errorf("alt %v idle %v plain %v", term.AltScreen(), term.Idle(), term.PlainCharset())
	}
	_, _ = term.Write([]byte("\x1b[?1049h\x1b(0\x1b["))
	if !term.AltScreen() || term.Idle() || term.PlainCharset() {
		t.Errorf("after ?1049h, ESC ( 0, ESC [: alt %v idle %v plain %v", term.AltScreen(), term.Idle(), term.PlainCharset())
	}
}

// TestCellPenRepaintsTheCell paints each cell of a styled screen on a
// second terminal, from the pen AppendCellPen gives after another pen, and
// requires the same cells; AppendPen must give the program's pen.
func TestCellPenRepaintsTheCell(t *testing.T) {
	src := New(3, 30, Options{})
	_, _ = src.Write([]byte("plain \x1b[1;3;4:3;58;5;9;38;2;1;2;3;48;5;17mstyled\x1b[0m \x1b]8;id=k;https://e.x/\x1b\\link\x1b]8;;\x1b\\ \x1b[7;9;53mrev\x1b[44m\x1b[K" +
		"\x1b[0;32m\x1b]8;;https://open/\x1b\\"))
	dst := New(3, 30, Options{})
	var out []byte
	for x := 0; x < 30; x++ {
		out = append(out, "\x1b[1;35;4m\x1b]8;;https://other/\x1b\\"...) // some other pen
		out = append(out, "\x1b[1;"...)
		out = append(out, []byte{byte('0' + (x+1)/10), byte('0' + (x+1)%10)}...)
		out = append(out, 'H')
		out = src.AppendCellPen(out, 0, x)
		if text, _ := src.Cell(0, x); text == "" {
			out = append(out, "\x1b[X"...)
		} else {
			out = append(out, text...)
		}
	}
	out = src.AppendPen(out)
	_, _ = dst.Write(out)
	for x := 0; x < 30; x++ {
		st, _ := src.Cell(0, x)
		dt, _ := dst.Cell(0, x)
		sa, da := src.buf.lines[0].cells[x].attrs(), dst.buf.lines[0].cells[x].attrs()
		if st != dt || sa.withSlot(0) != da.withSlot(0) {
			t.Errorf("cell %d: %q %+v, repainted %q %+v", x, st, sa, dt, da)
		}
		if sl, dl := linkOf(src, sa), linkOf(dst, da); sl != dl {
			t.Errorf("cell %d: link %+v, repainted %+v", x, sl, dl)
		}
	}
	if sp, dp := src.AppendPen(nil), dst.AppendPen(nil); string(sp) != string(dp) {
		t.Errorf("pen %q, restored %q", sp, dp)
	}
}

// linkOf is the link and underline colour a cell's attributes carry.
func linkOf(t *Terminal, a attrs) struct {
	link linkData
	ul   color
} {
	var r struct {
		link linkData
		ul   color
	}
	if s := a.slot(); s != 0 {
		d := t.ext.get(s)
		r.ul = d.ul
		if d.link != 0 {
			r.link = t.ext.link(d.link)
		}
	}
	return r
}
