package xtermjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startRenderer starts render.js for one test and ends it with the test.
func startRenderer(t testing.TB) *Renderer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Start(ctx)
	if err != nil {
		t.Fatalf("start renderer: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close renderer: %v", err)
		}
	})
	return r
}

func render(t *testing.T, r *Renderer, cols, rows int, chunks ...string) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := Request{Rows: rows, Cols: cols, Scrollback: 100}
	for _, c := range chunks {
		req.Chunks = append(req.Chunks, []byte(c))
	}
	st, err := r.Render(ctx, req)
	if err != nil {
		t.Fatalf("render %q: %v", chunks, err)
	}
	if st.Rows != rows || st.Cols != cols || len(st.Lines) != rows {
		t.Fatalf("render %q: got %dx%d with %d lines", chunks, st.Cols, st.Rows, len(st.Lines))
	}
	for y, l := range st.Lines {
		if len(l) != cols {
			t.Fatalf("render %q: row %d has %d cells", chunks, y, len(l))
		}
	}
	return st
}

func blank() Cell {
	return Cell{Chars: "", Width: 1, FG: ColorDefault, BG: ColorDefault, UnderlineColor: ColorDefault}
}

func TestRenderSGRCells(t *testing.T) {
	r := startRenderer(t)
	st := render(t, r, 20, 4, "\x1b[1;31mA\x1b[0;38;2;1;2;3;48;5;200mB\x1b[0;4:3;3;7;94;43mC\x1b[0;2;5;8;9;53;21mD\x1b[0;1;38;5;1;48;5;12mE")
	want := []Cell{
		{Chars: "A", Width: 1, FG: 1, BG: ColorDefault, Flags: AttrBold, UnderlineColor: ColorDefault},
		{Chars: "B", Width: 1, FG: ColorRGB | 0x010203, BG: ColorP256 | 200, UnderlineColor: ColorDefault},
		{Chars: "C", Width: 1, FG: 12, BG: 3, Flags: AttrUnderline | AttrItalic | AttrInverse, Underline: 3, UnderlineColor: ColorDefault},
		{Chars: "D", Width: 1, FG: ColorDefault, BG: ColorDefault,
			Flags: AttrDim | AttrBlink | AttrInvisible | AttrStrikethrough | AttrOverline | AttrUnderline, Underline: 2,
			UnderlineColor: ColorDefault},
		// A 256-colour index below 16 stays a 256-colour one: xterm.js
		// draws bold 16-colour text brighter, bold 256-colour text not.
		{Chars: "E", Width: 1, FG: ColorP256 | 1, BG: ColorP256 | 12, Flags: AttrBold, UnderlineColor: ColorDefault},
		blank(),
	}
	if got := st.Lines[0][:len(want)]; !slices.Equal(got, want) {
		t.Errorf("cells:\n got %+v\nwant %+v", got, want)
	}
	if st.Pen != (Cell{FG: want[4].FG, BG: want[4].BG, Flags: want[4].Flags, UnderlineColor: ColorDefault}) {
		t.Errorf("pen: got %+v, want the attributes of E", st.Pen)
	}
	if st.CursorX != 5 || st.CursorY != 0 || st.Buffer != "normal" {
		t.Errorf("cursor (%d,%d) buffer %q, want (5,0) normal", st.CursorX, st.CursorY, st.Buffer)
	}
	if got := st.Text(); got != "ABCDE\n\n\n" {
		t.Errorf("text %q", got)
	}
}

// TestRenderLinks: OSC 8 links come back per cell, numbered by first
// appearance, with their id; one without an id is new at every OSC 8 even
// to the same target, one with an id is the same link again.
func TestRenderLinks(t *testing.T) {
	r := startRenderer(t)
	st := render(t, r, 20, 3, "\x1b]8;;http://a\x07ab\x1b]8;;\x07c\x1b]8;id=x;http://b\x07d\x1b]8;;\x07e"+
		"\x1b]8;id=x;http://b\x07f\x1b]8;;http://a\x07\x1b[4mg")
	var got []int
	for _, c := range st.Lines[0][:8] {
		got = append(got, c.Link)
	}
	if want := []int{1, 1, 0, 2, 0, 2, 3, 0}; !slices.Equal(got, want) {
		t.Errorf("cell links %v, want %v", got, want)
	}
	if want := []Link{{URI: "http://a"}, {URI: "http://b", ID: "x"}, {URI: "http://a"}}; !slices.Equal(st.Links, want) {
		t.Errorf("links %+v, want %+v", st.Links, want)
	}
	// A linked cell underlined shows the link's dashed style.
	if c := st.Lines[0][6]; c.Underline != 5 || st.Pen.Link != 3 {
		t.Errorf("underlined linked cell %+v, pen %+v: want dashed underline and the pen holding link 3", c, st.Pen)
	}
}

// TestRenderUnderlineColour: SGR 58 colours are kept only on cells with
// extended attributes (an underline style or a link), SGR 59 stores white
// in xterm.js, and the pen holds its colour even without them.
func TestRenderUnderlineColour(t *testing.T) {
	r := startRenderer(t)
	st := render(t, r, 20, 3, "\x1b[4:3;58;2;255;0;0ma\x1b[58;5;3mb\x1b[24mc\x1b[4m\x1b[59md\x1b[0;58;5;9me")
	var got []int32
	for _, c := range st.Lines[0][:5] {
		got = append(got, c.UnderlineColor)
	}
	want := []int32{ColorRGB | 0xff0000, ColorP256 | 3, ColorDefault, ColorRGB | 0xffffff, ColorDefault}
	if !slices.Equal(got, want) {
		t.Errorf("underline colours %v, want %v", got, want)
	}
	if st.Pen.UnderlineColor != ColorP256|9 {
		t.Errorf("pen underline colour %d, want 256-colour 9", st.Pen.UnderlineColor)
	}
}

// TestRenderScrollbackCells: asked for, the scrollback comes back cell by
// cell, links numbered after the screen's.
func TestRenderScrollbackCells(t *testing.T) {
	r := startRenderer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := Request{Rows: 2, Cols: 10, Scrollback: 10, ScrollbackCells: true,
		Chunks: [][]byte{[]byte("\x1b[31mred\x1b]8;;http://s\x07L\x1b]8;;\x07\r\n\r\n\x1b]8;;http://t\x07x")}}
	st, err := r.Render(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.ScrollbackCells) != 1 || len(st.ScrollbackCells[0]) != 10 {
		t.Fatalf("scrollback cells %v, want one line of 10", st.ScrollbackCells)
	}
	if c := st.ScrollbackCells[0][0]; c.Chars != "r" || c.FG != 1 {
		t.Errorf("first scrollback cell %+v, want a red r", c)
	}
	if c := st.ScrollbackCells[0][3]; c.Link != 2 || st.Links[1].URI != "http://s" {
		t.Errorf("linked scrollback cell %+v, links %+v: want link 2 to http://s (the screen's is 1)", c, st.Links)
	}
	req.ScrollbackCells = false
	if st, err := r.Render(ctx, req); err != nil || st.ScrollbackCells != nil {
		t.Errorf("not asked: scrollback cells %v, error %v", st.ScrollbackCells, err)
	}
}

func TestRenderWideAndCombining(t *testing.T) {
	r := startRenderer(t)
	// The wide character does not fit in the last column: xterm.js leaves
	// it empty (in the pen's colours) and wraps. The UTF-8 of 中 and the SGR are split across
	// chunks, as PTY reads split them.
	st := render(t, r, 10, 3, "123456789\x1b[3", "2m\xe4", "\xb8\xade\xcc\x81")
	green := func(c Cell) Cell { c.FG = 2; return c }
	if got := st.Lines[0][9]; got != green(blank()) {
		t.Errorf("last column: got %+v, want empty and green", got)
	}
	if got, want := st.Lines[1][0], green(Cell{Chars: "中", Width: 2, BG: ColorDefault, UnderlineColor: ColorDefault}); got != want {
		t.Errorf("wide cell: got %+v, want %+v", got, want)
	}
	if got, want := st.Lines[1][1], green(Cell{Chars: "", Width: 0, BG: ColorDefault, UnderlineColor: ColorDefault}); got != want {
		t.Errorf("cell under the wide one: got %+v, want %+v", got, want)
	}
	if got, want := st.Lines[1][2], green(Cell{Chars: "e\u0301", Width: 1, BG: ColorDefault, UnderlineColor: ColorDefault}); got != want {
		t.Errorf("combining: got %+v, want %+v", got, want)
	}
	if !slices.Equal(st.Wrapped, []bool{false, true, false}) {
		t.Errorf("wrapped %v, want the second row wrapped", st.Wrapped)
	}
	if got := st.Text(); got != "123456789\n中e\u0301\n" {
		t.Errorf("text %q", got)
	}
	// Unicode 11 widths: an emoji is wide.
	st = render(t, r, 10, 1, "\U0001F600x")
	if st.Lines[0][0].Width != 2 || st.Lines[0][2].Chars != "x" {
		t.Errorf("emoji: got %+v, want a wide cell then x", st.Lines[0][:3])
	}
}

func TestRenderAlternateScreen(t *testing.T) {
	r := startRenderer(t)
	st := render(t, r, 10, 3, "main\x1b[?1049h\x1b[Halt")
	if st.Buffer != "alternate" {
		t.Fatalf("buffer %q, want alternate", st.Buffer)
	}
	if got := st.Text(); got != "alt\n\n" {
		t.Errorf("alternate text %q", got)
	}
	main := State{Lines: st.NormalLines}
	if got := main.Text(); got != "main\n\n" {
		t.Errorf("normal screen under it %q", got)
	}
	// The normal buffer's scrollback stays visible to the dump meanwhile.
	st = render(t, r, 10, 3, "1\r\n2\r\n3\r\nmain\x1b[?1049h")
	if !slices.Equal(st.Scrollback, []string{"1"}) || (State{Lines: st.NormalLines}).Text() != "2\n3\nmain" {
		t.Errorf("under the alternate screen: scrollback %q, normal screen %q", st.Scrollback, (State{Lines: st.NormalLines}).Text())
	}
	st = render(t, r, 10, 3, "main\x1b[?1049halt\x1b[?1049l")
	if st.Buffer != "normal" || st.NormalLines != nil || st.CursorX != 4 {
		t.Errorf("after leaving: buffer %q normal lines %v cursor x %d", st.Buffer, st.NormalLines, st.CursorX)
	}
}

func TestRenderModesTitleCursor(t *testing.T) {
	r := startRenderer(t)
	st := render(t, r, 20, 5,
		"\x1b]0;first\x07\x1b]2;second\x1b\\",
		"\x1b[?1002h\x1b[?1006h\x1b[?2004h\x1b[?25l\x1b[?1h\x1b=\x1b[4h\x1b[?7l\x1b[?1004h\x1b[5 q")
	if st.Title != "second" {
		t.Errorf("title %q, want second", st.Title)
	}
	want := Modes{ApplicationCursorKeys: true, ApplicationKeypad: true, BracketedPaste: true, Insert: true,
		SendFocus: true, MouseTracking: "drag", MouseEncoding: "sgr"}
	if st.Modes != want {
		t.Errorf("modes:\n got %+v\nwant %+v", st.Modes, want)
	}
	if st.CursorVisible || st.CursorStyle != "bar" || !st.CursorBlink {
		t.Errorf("cursor visible %v style %q blink %v, want hidden blinking bar", st.CursorVisible, st.CursorStyle, st.CursorBlink)
	}
	st = render(t, r, 20, 5, "\x1b[?1000h\x1b[?1016h")
	if st.Modes.MouseTracking != "vt200" || st.Modes.MouseEncoding != "sgr_pixels" || !st.Modes.Wraparound {
		t.Errorf("modes %+v, want vt200 sgr_pixels with wraparound", st.Modes)
	}
	st = render(t, r, 20, 5, "")
	if st.Modes != (Modes{Wraparound: true, MouseTracking: "none", MouseEncoding: "default"}) ||
		!st.CursorVisible || st.CursorStyle != "block" || st.CursorBlink || st.Title != "" {
		t.Errorf("fresh terminal: %+v cursor visible %v style %q blink %v", st.Modes, st.CursorVisible, st.CursorStyle, st.CursorBlink)
	}
}

func TestRenderRegionScrollbackSavedCursorCharsetsTabs(t *testing.T) {
	r := startRenderer(t)
	st := render(t, r, 20, 3, "1\r\n2\r\n3\r\n4\r\n5")
	if !slices.Equal(st.Scrollback, []string{"1", "2"}) || st.Text() != "3\n4\n5" {
		t.Errorf("scrollback %q screen %q", st.Scrollback, st.Text())
	}
	if st.ScrollTop != 0 || st.ScrollBottom != 2 {
		t.Errorf("default region %d..%d", st.ScrollTop, st.ScrollBottom)
	}
	st = render(t, r, 80, 24, "\x1b[5;20r\x1b[7;10H\x1b7\x1b)0\x0e\x1b*A\x1b[3g\x1b[1;5H\x1bH\x1b[1;9H\x1bH")
	if st.ScrollTop != 4 || st.ScrollBottom != 19 {
		t.Errorf("region %d..%d, want 4..19", st.ScrollTop, st.ScrollBottom)
	}
	if st.SavedX != 9 || st.SavedY != 6 {
		t.Errorf("saved cursor (%d,%d), want (9,6)", st.SavedX, st.SavedY)
	}
	if st.Charsets != [4]string{"", "0", "A", ""} || st.GL != 1 {
		t.Errorf("charsets %q GL %d, want G1 DEC graphics, G2 UK, GL=G1", st.Charsets, st.GL)
	}
	if !slices.Equal(st.Tabs, []int{4, 8}) {
		t.Errorf("tabs %v, want [4 8]", st.Tabs)
	}
	st = render(t, r, 20, 2, "")
	if !slices.Equal(st.Tabs, []int{0, 8, 16}) {
		t.Errorf("default tabs %v", st.Tabs)
	}
	// DEC special graphics as xterm.js maps it.
	st = render(t, r, 20, 2, "\x1b(0qx\x1b(Bq")
	if got := st.Text(); got != "─│q\n" {
		t.Errorf("line drawing %q", got)
	}
}

func TestRenderResizes(t *testing.T) {
	r := startRenderer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chunks := [][]byte{[]byte("0123456789\r\n"), []byte("ab")}
	// Narrowed to 5 columns, the first line reflows into two; widened to
	// 10 at the end, they join again.
	st, err := r.Render(ctx, Request{Rows: 3, Cols: 20, Scrollback: 10, Chunks: chunks,
		Resizes: []Resize{{Before: 1, Cols: 5, Rows: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Cols != 5 || st.Rows != 3 || len(st.Lines[0]) != 5 || st.Text() != "01234\n56789\nab" ||
		!slices.Equal(st.Wrapped, []bool{false, true, false}) {
		t.Errorf("narrowed: %dx%d %q wrapped %v", st.Cols, st.Rows, st.Text(), st.Wrapped)
	}
	st, err = r.Render(ctx, Request{Rows: 3, Cols: 20, Scrollback: 10, Chunks: chunks,
		Resizes: []Resize{{Before: 1, Cols: 5, Rows: 3}, {Before: 2, Cols: 10, Rows: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Cols != 10 || st.Rows != 4 || len(st.Lines) != 4 || st.Text() != "0123456789\nab\n\n" || st.CursorY != 1 {
		t.Errorf("widened again: %dx%d %q cursor row %d", st.Cols, st.Rows, st.Text(), st.CursorY)
	}
	if _, err := r.Render(ctx, Request{Rows: 3, Cols: 20, Resizes: []Resize{{Before: 1, Cols: 5, Rows: 3}}}); err == nil {
		t.Error("a resize after a chunk that is not there was accepted")
	}
}

func TestRenderBatchKeepsOrder(t *testing.T) {
	r := startRenderer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 500
	reqs := make([]Request, n)
	for i := range reqs {
		// Different sizes so that a mix-up shows in more than the text.
		reqs[i] = Request{Rows: 2 + i%5, Cols: 10 + i%7, Chunks: [][]byte{[]byte(fmt.Sprint(i))}}
	}
	states, err := r.RenderBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		if line := strings.SplitN(st.Text(), "\n", 2)[0]; line != fmt.Sprint(i) || st.Rows != reqs[i].Rows || st.Cols != reqs[i].Cols {
			t.Fatalf("answer %d: %dx%d %q", i, st.Cols, st.Rows, line)
		}
	}
	// The renderer stays usable after a batch.
	if st := render(t, r, 10, 2, "after"); st.Text() != "after\n" {
		t.Errorf("after the batch: %q", st.Text())
	}
}

func TestRenderRejectsBadSizeAndSurvives(t *testing.T) {
	r := startRenderer(t)
	if _, err := r.Render(context.Background(), Request{Rows: 0, Cols: 10}); err == nil {
		t.Error("a 10x0 terminal rendered")
	}
	if st := render(t, r, 10, 2, "ok"); st.Text() != "ok\n" {
		t.Errorf("after a rejected request: %q", st.Text())
	}
}

func TestRenderCancelled(t *testing.T) {
	r := startRenderer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Render(ctx, Request{Rows: 2, Cols: 10}); err == nil {
		t.Fatal("render with a cancelled context succeeded")
	}
	if _, err := r.Render(context.Background(), Request{Rows: 2, Cols: 10}); err == nil {
		t.Error("a renderer killed by a cancelled context still renders")
	}
}

func TestStartWithoutNodeModules(t *testing.T) {
	_, err := start(context.Background(), t.TempDir())
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "npm ci") {
		t.Errorf("start without node_modules: %v, want ErrNotInstalled saying to run npm ci", err)
	}
}

func TestCellJSONRoundTrip(t *testing.T) {
	cells := []Cell{
		{Chars: "a", Width: 1, FG: ColorDefault, BG: ColorRGB | 0xabcdef, Flags: AttrBold | AttrOverline, Underline: 5},
		{Chars: "\"\\\u00e9\n", Width: 2, FG: ColorP256 | 255, BG: 0, Link: 3, UnderlineColor: ColorRGB | 0x10203},
		{},
	}
	b, err := json.Marshal(cells)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `[["a",1,-1,`) {
		t.Errorf("not the array form: %s", b)
	}
	var back []Cell
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back, cells) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, cells)
	}
	for _, bad := range []string{`{}`, `["a",1,2]`, `["a",1,2,3,4,5,6]`, `["a",1,2,3,4,5,6,7,8]`, `[1,1,1,1,1,1,1,1]`, `["a,1,1,1,1,1,1,1]`, `["a",x,1,1,1,1,1,1]`} {
		var c Cell
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s decoded as %+v", bad, c)
		}
	}
}

func TestDiff(t *testing.T) {
	r := startRenderer(t)
	a := render(t, r, 10, 3, "\x1b[1mab")
	if d := Diff(a, a); len(d) != 0 {
		t.Errorf("a state differs from itself: %q", d)
	}
	b := render(t, r, 10, 3, "\x1b[1ma\x1b[0mc\x1b[?25l")
	d := Diff(a, b)
	want := []string{
		"cursor visible: want true, got false",
		"pen: want empty width=0 bold, got empty width=0",
		"row 0 col 1: want 'b' bold, got 'c'",
	}
	if !slices.Equal(d, want) {
		t.Errorf("diff:\n got %q\nwant %q", d, want)
	}
	c := render(t, r, 10, 5, strings.Repeat("\x1b[1mX", 50))
	d = Diff(render(t, r, 10, 5, ""), c)
	if len(d) != maxDiffs+1 || !strings.HasPrefix(d[maxDiffs], "... and ") {
		t.Errorf("diff of a whole changed screen not capped: %d lines, last %q", len(d), d[len(d)-1])
	}
	// Charset aliases compare by meaning.
	x, y := a, a
	x.Charsets = [4]string{"B", "5", "", ""}
	y.Charsets = [4]string{"", "C", "", ""}
	if d := Diff(x, y); len(d) != 0 {
		t.Errorf("aliases differ: %q", d)
	}
}

func BenchmarkRenderBatch(b *testing.B) {
	r := startRenderer(b)
	ctx := context.Background()
	reqs := make([]Request, 1000)
	for i := range reqs {
		reqs[i] = Request{Rows: 10, Cols: 20, Scrollback: 50, Chunks: [][]byte{[]byte(fmt.Sprintf("\x1b[3%dmcase %d\r\n\x1b[?1049h\x1b[2;5r中文", i%8, i))}}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.RenderBatch(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(reqs)), "ns/case")
}
