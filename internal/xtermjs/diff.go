package xtermjs

import (
	"fmt"
	"strconv"
	"strings"
)

// maxDiffs caps Diff's answer: past it, one line counts the rest.
const maxDiffs = 40

// Diff lists the differences between want and got readably, for example
// "row 3 col 10: want 'a' bold, got 'b'"; it is empty when they are equal.
// At most maxDiffs lines are listed, then a count of the rest.
//
// Charset designations compare by meaning: "B" (ASCII) equals "" (none),
// and the aliases xterm.js shares one table for ("5" for "C", "6" for "E",
// "7" for "H") equal their first letter.
func Diff(want, got State) []string {
	d := &differ{}
	d.field("size", fmt.Sprintf("%dx%d", want.Cols, want.Rows), fmt.Sprintf("%dx%d", got.Cols, got.Rows))
	d.field("buffer", want.Buffer, got.Buffer)
	d.field("cursor", fmt.Sprintf("(%d,%d)", want.CursorX, want.CursorY), fmt.Sprintf("(%d,%d)", got.CursorX, got.CursorY))
	d.field("cursor visible", want.CursorVisible, got.CursorVisible)
	d.field("cursor style", want.CursorStyle, got.CursorStyle)
	d.field("cursor blink", want.CursorBlink, got.CursorBlink)
	d.field("title", strconv.Quote(want.Title), strconv.Quote(got.Title))
	d.modes(want.Modes, got.Modes)
	d.field("scroll region", fmt.Sprintf("%d..%d", want.ScrollTop, want.ScrollBottom), fmt.Sprintf("%d..%d", got.ScrollTop, got.ScrollBottom))
	d.field("pen", describe(want.Pen), describe(got.Pen))
	d.field("saved cursor", fmt.Sprintf("(%d,%d)", want.SavedX, want.SavedY), fmt.Sprintf("(%d,%d)", got.SavedX, got.SavedY))
	for g := range want.Charsets {
		d.field(fmt.Sprintf("charset G%d", g), canonicalCharset(want.Charsets[g]), canonicalCharset(got.Charsets[g]))
	}
	d.field("GL", want.GL, got.GL)
	d.field("tab stops", fmt.Sprint(want.Tabs), fmt.Sprint(got.Tabs))
	d.links(want.Links, got.Links)
	d.screen("", want.Lines, got.Lines)
	d.wrapped("row", want.Wrapped, got.Wrapped)
	if want.NormalLines != nil || got.NormalLines != nil {
		d.screen("normal screen ", want.NormalLines, got.NormalLines)
	}
	d.scrollback(want, got)
	if want.ScrollbackCells != nil && got.ScrollbackCells != nil {
		// Newest lines aligned, as the text above.
		w, g := want.ScrollbackCells, got.ScrollbackCells
		n := min(len(w), len(g))
		d.screen("scrollback ", w[len(w)-n:], g[len(g)-n:])
	}
	return d.result()
}

type differ struct {
	out  []string
	more int
}

func (d *differ) add(format string, args ...any) {
	if len(d.out) >= maxDiffs {
		d.more++
		return
	}
	d.out = append(d.out, fmt.Sprintf(format, args...))
}

func (d *differ) result() []string {
	if d.more > 0 {
		d.out = append(d.out, fmt.Sprintf("... and %d more differences", d.more))
	}
	return d.out
}

func (d *differ) field(name string, want, got any) {
	if want != got {
		d.add("%s: want %v, got %v", name, want, got)
	}
}

func (d *differ) modes(want, got Modes) {
	d.field("mode application cursor keys", want.ApplicationCursorKeys, got.ApplicationCursorKeys)
	d.field("mode application keypad", want.ApplicationKeypad, got.ApplicationKeypad)
	d.field("mode bracketed paste", want.BracketedPaste, got.BracketedPaste)
	d.field("mode insert", want.Insert, got.Insert)
	d.field("mode origin", want.Origin, got.Origin)
	d.field("mode wraparound", want.Wraparound, got.Wraparound)
	d.field("mode reverse wraparound", want.ReverseWraparound, got.ReverseWraparound)
	d.field("mode send focus", want.SendFocus, got.SendFocus)
	d.field("mouse tracking", want.MouseTracking, got.MouseTracking)
	d.field("mouse encoding", want.MouseEncoding, got.MouseEncoding)
}

func (d *differ) links(want, got []Link) {
	if len(want) != len(got) {
		d.add("links: want %d, got %d", len(want), len(got))
	}
	for i := 0; i < min(len(want), len(got)); i++ {
		if want[i] != got[i] {
			d.add("link %d: want %s, got %s", i+1, describeLink(want[i]), describeLink(got[i]))
		}
	}
}

func describeLink(l Link) string {
	if l.URI == "" {
		return "(dropped)"
	}
	if l.ID == "" {
		return strconv.Quote(l.URI)
	}
	return fmt.Sprintf("%q id=%q", l.URI, l.ID)
}

func (d *differ) screen(prefix string, want, got [][]Cell) {
	if len(want) != len(got) {
		d.add("%srows: want %d, got %d", prefix, len(want), len(got))
	}
	for y := 0; y < min(len(want), len(got)); y++ {
		w, g := want[y], got[y]
		if len(w) != len(g) {
			d.add("%srow %d: want %d cells, got %d", prefix, y, len(w), len(g))
		}
		for x := 0; x < min(len(w), len(g)); x++ {
			if w[x] != g[x] {
				d.add("%srow %d col %d: want %s, got %s", prefix, y, x, describe(w[x]), describe(g[x]))
			}
		}
	}
}

func (d *differ) wrapped(what string, want, got []bool) {
	if len(want) != len(got) {
		d.add("%s wrapped flags: want %d, got %d", what, len(want), len(got))
	}
	for i := 0; i < min(len(want), len(got)); i++ {
		if want[i] != got[i] {
			d.add("%s %d wrapped: want %v, got %v", what, i, want[i], got[i])
		}
	}
}

func (d *differ) scrollback(want, got State) {
	if len(want.Scrollback) != len(got.Scrollback) {
		d.add("scrollback: want %d lines, got %d", len(want.Scrollback), len(got.Scrollback))
	}
	// Align the newest lines: when the counts differ, the oldest are the
	// ones a scrollback limit would drop.
	n := min(len(want.Scrollback), len(got.Scrollback))
	wo, gotOff := len(want.Scrollback)-n, len(got.Scrollback)-n
	for i := 0; i < n; i++ {
		if want.Scrollback[wo+i] != got.Scrollback[gotOff+i] {
			d.add("scrollback line %d from the top of the screen: want %q, got %q", n-i, want.Scrollback[wo+i], got.Scrollback[gotOff+i])
		}
	}
	if len(want.ScrollbackWrapped) == len(want.Scrollback) && len(got.ScrollbackWrapped) == len(got.Scrollback) {
		for i := 0; i < n; i++ {
			if want.ScrollbackWrapped[wo+i] != got.ScrollbackWrapped[gotOff+i] {
				d.add("scrollback line %d from the top of the screen wrapped: want %v, got %v", n-i, want.ScrollbackWrapped[wo+i], got.ScrollbackWrapped[gotOff+i])
			}
		}
	} else {
		d.wrapped("scrollback line", want.ScrollbackWrapped, got.ScrollbackWrapped)
	}
}

func canonicalCharset(s string) string {
	switch s {
	case "B":
		return ""
	case "5":
		return "C"
	case "6":
		return "E"
	case "7":
		return "H"
	}
	return s
}

var flagNames = [...]string{"bold", "dim", "italic", "underline", "blink", "inverse", "invisible", "strikethrough", "overline"}

var underlineNames = [...]string{"none", "single", "double", "curly", "dotted", "dashed"}

// describe writes a cell as 'a' bold fg=1 bg=#ff0000, a 256-colour index
// as 256:N (default attributes are left out).
func describe(c Cell) string {
	var b strings.Builder
	if c.Chars == "" {
		b.WriteString("empty")
	} else {
		if r := []rune(c.Chars); len(r) == 1 {
			b.WriteString(strconv.QuoteRuneToGraphic(r[0]))
		} else {
			b.WriteString(strconv.QuoteToGraphic(c.Chars))
		}
	}
	if c.Width != 1 {
		fmt.Fprintf(&b, " width=%d", c.Width)
	}
	if c.FG != ColorDefault {
		b.WriteString(" fg=" + colourName(c.FG))
	}
	if c.BG != ColorDefault {
		b.WriteString(" bg=" + colourName(c.BG))
	}
	for i, name := range flagNames {
		if c.Flags&(1<<i) != 0 {
			b.WriteString(" " + name)
		}
	}
	if c.Flags>>len(flagNames) != 0 {
		fmt.Fprintf(&b, " flags=%#x", c.Flags)
	}
	if c.Link != 0 {
		fmt.Fprintf(&b, " link=%d", c.Link)
	}
	if c.UnderlineColor != ColorDefault {
		b.WriteString(" underline-color=" + colourName(c.UnderlineColor))
	}
	if c.Underline != 0 {
		if int(c.Underline) < len(underlineNames) {
			b.WriteString(" underline-style=" + underlineNames[c.Underline])
		} else {
			fmt.Fprintf(&b, " underline-style=%d", c.Underline)
		}
	}
	return b.String()
}

func colourName(c int32) string {
	switch {
	case c&ColorRGB != 0:
		return fmt.Sprintf("#%06x", c&0xffffff)
	case c&ColorP256 != 0:
		return "256:" + strconv.Itoa(int(c&0xff))
	}
	return strconv.Itoa(int(c))
}

// Text returns the visible screen as text, one line a row, right-trimmed,
// for failure messages. The second half of a wide character adds nothing,
// and an empty cell reads as a space.
func (s State) Text() string {
	var b strings.Builder
	for y, row := range s.Lines {
		var line strings.Builder
		for _, c := range row {
			switch {
			case c.Width == 0:
			case c.Chars == "":
				line.WriteByte(' ')
			default:
				line.WriteString(c.Chars)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		if y < len(s.Lines)-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
