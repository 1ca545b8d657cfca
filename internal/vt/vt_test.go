package vt

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// write feeds s to a fresh rows x cols terminal.
func write(rows, cols int, s string) *Terminal {
	t := New(rows, cols, Options{Scrollback: 100})
	t.Write([]byte(s))
	return t
}

func screenText(t *Terminal) string { return stateOf(t).Text() }

func TestSplitAtEveryOffsetGivesTheSameState(t *testing.T) {
	for _, s := range synthetic {
		data := []byte(s.data)
		want := stateOf(write(10, 30, s.data))
		for cut := 1; cut < len(data); cut++ {
			term := New(10, 30, Options{Scrollback: 100})
			term.Write(data[:cut])
			term.Write(data[cut:])
			if d := xtermjs.Diff(want, stateOf(term)); len(d) > 0 {
				t.Fatalf("%s cut at %d:\n%s", s.name, cut, limitLines(d, 5))
			}
		}
	}
}

func TestByteAtATimeGivesTheSameState(t *testing.T) {
	for _, s := range synthetic {
		want := stateOf(write(10, 30, s.data))
		term := New(10, 30, Options{Scrollback: 100})
		for i := 0; i < len(s.data); i++ {
			term.Write([]byte{s.data[i]})
		}
		if d := xtermjs.Diff(want, stateOf(term)); len(d) > 0 {
			t.Fatalf("%s byte by byte:\n%s", s.name, limitLines(d, 5))
		}
	}
}

func TestWriteReportsEveryByteWritten(t *testing.T) {
	term := New(3, 10, Options{})
	p := []byte("\x1b[31mabc\xff\xe4")
	n, err := term.Write(p)
	if n != len(p) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
	}
}

func TestPlainTextWrapsAndScrolls(t *testing.T) {
	term := write(3, 5, "abcdefgh\r\nij\r\nkl\r\nmn")
	st := stateOf(term)
	if got := strings.Join(st.Scrollback, "|"); got != "abcde|fgh" {
		t.Errorf("scrollback %q, want abcde|fgh", got)
	}
	if !st.ScrollbackWrapped[1] {
		t.Errorf("fgh should be marked as wrapped from abcde")
	}
	if st.CursorX != 2 || st.CursorY != 2 {
		t.Errorf("cursor (%d,%d), want (2,2)", st.CursorX, st.CursorY)
	}
}

func TestScrollbackIsBounded(t *testing.T) {
	term := New(2, 10, Options{Scrollback: 5})
	for i := 0; i < 50; i++ {
		term.Write([]byte("line\r\n"))
	}
	if n := len(stateOf(term).Scrollback); n != 5 {
		t.Fatalf("scrollback holds %d lines, want 5", n)
	}
}

// TestCompactKeepsCellsOnlyWhileLinesArrive pins the compaction policy: a
// Compact while lines keep scrolling off keeps their cells for the lines to
// come, so a flood allocates no line after it; one with no line since the
// last lets every cell go; and neither changes what the scrollback holds.
func TestCompactKeepsCellsOnlyWhileLinesArrive(t *testing.T) {
	term := New(24, 80, Options{Scrollback: 100})
	var lines []byte
	for i := range 300 {
		lines = fmt.Appendf(lines, "line %d\r\n", i)
	}
	flood := func() { term.Write(lines) }
	flood()
	if term.PendingLines() == 0 {
		t.Fatal("no line waits unencoded after a flood")
	}
	term.Compact()
	if term.PendingLines() != 0 || term.HeldLines() == 0 {
		t.Fatalf("after a Compact during a flood: %d lines pending, %d held; want 0 pending and the cells kept", term.PendingLines(), term.HeldLines())
	}
	if allocs := testing.AllocsPerRun(5, flood); allocs > 0 {
		t.Fatalf("a flood after a Compact allocated %v times, want no new lines", allocs)
	}
	before := stateOf(term).Scrollback
	term.Compact()
	term.Compact()
	if term.HeldLines() != 0 {
		t.Fatalf("%d lines of cells still held after two Compacts with no output between", term.HeldLines())
	}
	after := stateOf(term).Scrollback
	if len(before) != 100 || !slices.Equal(before, after) {
		t.Fatalf("compacting changed the scrollback: %d lines before, %d after", len(before), len(after))
	}
	if got := strings.TrimRight(after[99], " "); got != "line 276" { // the screen shows 277-299 and an empty row
		t.Fatalf("newest scrollback line %q, want line 276", got)
	}
}

func TestTitle(t *testing.T) {
	term := write(3, 10, "\x1b]2;one\x07\x1b]1;icon\x07")
	if term.Title() != "one" {
		t.Fatalf("title %q, want one", term.Title())
	}
	term.Write([]byte("\x1b]0;two\x1b\\"))
	if term.Title() != "two" {
		t.Fatalf("title %q, want two", term.Title())
	}
}

func TestSizeAndResize(t *testing.T) {
	term := New(0, 0, Options{})
	if r, c := term.Size(); r != 1 || c != 2 {
		t.Fatalf("New(0,0) size %dx%d, want 1x2", r, c)
	}
	term.Resize(30, 100)
	if r, c := term.Size(); r != 30 || c != 100 {
		t.Fatalf("size %dx%d after Resize(30,100)", r, c)
	}
	term.Resize(1<<30, 1<<30)
	if r, c := term.Size(); r != maxRows || c != maxCols {
		t.Fatalf("size %dx%d after a huge Resize, want the limits %dx%d", r, c, maxRows, maxCols)
	}
}

func TestCombiningMarkSplitAcrossWritesJoins(t *testing.T) {
	term := New(3, 10, Options{})
	term.Write([]byte("e\xcc"))
	term.Write([]byte("\x81x"))
	st := stateOf(term)
	if c := st.Lines[0][0]; c.Chars != "e\u0301" || c.Width != 1 {
		t.Fatalf("cell 0 = %q width %d, want e + U+0301 width 1", c.Chars, c.Width)
	}
	if st.Lines[0][1].Chars != "x" {
		t.Fatalf("cell 1 = %q, want x", st.Lines[0][1].Chars)
	}
}

func TestWideCharacterAtTheLastColumnWraps(t *testing.T) {
	st := stateOf(write(3, 5, "abcd中"))
	if st.Lines[0][4].Chars != "" || st.Lines[1][0].Chars != "中" || st.Lines[1][0].Width != 2 || !st.Wrapped[1] {
		t.Fatalf("want 中 wrapped to row 1, got:\n%s", st.Text())
	}
}

func TestAlternateScreenKeepsTheNormalOneUnderneath(t *testing.T) {
	term := write(3, 10, "main\x1b[?1049h\x1b[2Jalt")
	st := stateOf(term)
	// The alternate screen starts with the normal screen's cursor.
	if st.Buffer != "alternate" || st.NormalLines[0][0].Chars != "m" || st.Lines[0][4].Chars != "a" {
		t.Fatalf("buffer %s, normal screen:\n%v\nalternate:\n%s", st.Buffer, st.NormalLines[0], st.Text())
	}
	term.Write([]byte("\x1b[?1049l"))
	st = stateOf(term)
	if st.Buffer != "normal" || st.Lines[0][0].Chars != "m" || st.CursorX != 4 {
		t.Fatalf("after leaving: buffer %s row 0 %q cursor x %d", st.Buffer, st.Lines[0][0].Chars, st.CursorX)
	}
}

func TestQueriesAreAnsweredOnlyWhenAsked(t *testing.T) {
	queries := "\x1b[c\x1b[>c\x1b[5n\x1b[2;3H\x1b[6n\x1b[?2004$p\x1b[4$p"
	term := New(5, 10, Options{})
	term.Write([]byte(queries))
	if r := term.AppendReplies(nil); len(r) != 0 {
		t.Fatalf("replies while off: %q", r)
	}
	term.SetAnswerQueries(true)
	term.Write([]byte("\x1b[?2004h" + queries))
	want := "\x1b[?1;2c\x1b[>0;276;0c\x1b[0n\x1b[2;3R\x1b[?2004;1$y\x1b[4;2$y"
	if r := string(term.AppendReplies(nil)); r != want {
		t.Fatalf("replies %q, want %q", r, want)
	}
	if r := term.AppendReplies(nil); len(r) != 0 {
		t.Fatalf("replies not drained: %q", r)
	}
}

func TestRepliesAreBounded(t *testing.T) {
	term := New(5, 10, Options{})
	term.SetAnswerQueries(true)
	term.Write([]byte(strings.Repeat("\x1b[c", 10000)))
	if r := term.AppendReplies(nil); len(r) > maxReplies {
		t.Fatalf("%d bytes of replies pending, bound is %d", len(r), maxReplies)
	}
}

func TestSnapshotHasNoQueries(t *testing.T) {
	term := write(5, 20, "\x1b[1;31mred\x1b[?1049h\x1b]2;t\x07x")
	snap := string(term.AppendSnapshot(nil))
	for _, q := range []string{"\x1b[c", "\x1b[>c", "n", "$p", "\x1b]10;?", "\x1bP"} {
		if q == "n" {
			if strings.Contains(snap, "\x1b[6n") || strings.Contains(snap, "\x1b[5n") {
				t.Fatalf("snapshot has a DSR: %q", snap)
			}
			continue
		}
		if strings.Contains(snap, q) {
			t.Fatalf("snapshot has query %q: %q", q, snap)
		}
	}
}

func TestSnapshotResumesASplitSequence(t *testing.T) {
	term := write(5, 20, "ab\x1b[3")
	again := New(5, 20, Options{})
	again.Write(term.AppendSnapshot(nil))
	term.Write([]byte("1mX"))
	again.Write([]byte("1mX"))
	if d := xtermjs.Diff(stateOf(term), stateOf(again)); len(d) > 0 {
		t.Fatalf("after the rest of the sequence:\n%s", limitLines(d, 5))
	}
	if c := stateOf(again).Lines[0][2]; c.Chars != "X" || c.FG != 1 {
		t.Fatalf("X printed as %+v, want red X", c)
	}
}

func TestSteadyStateWritesDoNotAllocate(t *testing.T) {
	term := New(24, 80, Options{Scrollback: 1000})
	plain, sgr := plainLines()[:64<<10], sgrDense()[:64<<10]
	// Warm up until every scrollback slot has held an SGR-dense line (the
	// larger kind, kept as cells) and a plain one (kept as its text):
	// slots keep their buffers of both kinds.
	for i := 0; i < 20; i++ {
		term.Write(sgr)
	}
	for i := 0; i < 3; i++ {
		term.Write(plain)
	}
	for i := 0; i < 20; i++ {
		term.Write(sgr)
	}
	if a := testing.AllocsPerRun(5, func() { term.Write(plain) }); a != 0 {
		t.Errorf("plain text: %v allocations per 64 KiB write", a)
	}
	if a := testing.AllocsPerRun(5, func() { term.Write(sgr) }); a != 0 {
		t.Errorf("SGR-dense text: %v allocations per 64 KiB write", a)
	}
}
