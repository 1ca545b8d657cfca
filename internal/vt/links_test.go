package vt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// manyLinks opens n links without an id and n with one of three ids, one
// pair a line.
func manyLinks(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "\x1b]8;;http://h/%d\x07%d\x1b]8;;\x07 \x1b]8;id=k%d;http://i/%d\x07x\x1b]8;;\x07\r\n", i, i, i%3, i%3)
	}
	return []byte(b.String())
}

// TestXtermManyLinksReuseSlots: more links than a cell can name go through
// the table, whose slots are taken back once no cell shows them; the screen
// still shows each line's own links, as xterm.js does.
func TestXtermManyLinksReuseSlots(t *testing.T) {
	data := manyLinks(3 * maxSlots)
	term := New(24, 40, Options{Scrollback: 100})
	term.Write(data)
	if n := len(term.ext.slots); n > maxSlots {
		t.Fatalf("the table holds %d slots, more than %d", n, maxSlots)
	}
	if len(term.ext.free) == 0 && len(term.ext.slots) < maxSlots {
		t.Fatalf("the table never filled: %d slots for %d links", len(term.ext.slots), 6*maxSlots)
	}
	r := startRenderer(t)
	if failed := checkCases(t, r, []diffCase{
		{name: "many links", rows: 24, cols: 40, sb: 100, chunks: [][]byte{data}},
	}, false); failed > 0 {
		t.Fatal("differs from xterm.js")
	}
}

// TestLinkIDContinuesAcrossLines: OSC 8 with the same id and target
// continues one link, another target with that id is another link, and a
// link without an id is new each time.
func TestLinkIDContinuesAcrossLines(t *testing.T) {
	term := New(5, 20, Options{})
	term.Write([]byte("\x1b]8;id=a;http://x\x07A\x1b]8;;\x07\r\n\x1b]8;id=a;http://x\x07B\x1b]8;id=a;http://y\x07C" +
		"\x1b]8;;http://z\x07D\x1b]8;;http://z\x07E"))
	st := stateOf(term)
	got := []int{st.Lines[0][0].Link, st.Lines[1][0].Link, st.Lines[1][1].Link, st.Lines[1][2].Link, st.Lines[1][3].Link}
	if want := []int{1, 1, 2, 3, 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("links of A B C D E: %v, want %v (%+v)", got, want, st.Links)
	}
}

// TestSnapshotKeepsTheJoinUnderALink: a combining mark written after the
// snapshot joins the character before the cursor, printed with a link and
// an underline colour, as it does on the terminal attached all along.
func TestSnapshotKeepsTheJoinUnderALink(t *testing.T) {
	r := startRenderer(t)
	var cases []diffCase
	for i, s := range []string{
		"\x1b]8;;http://j\x07ab",
		"\x1b[4:3;58;5;2mab",
		"\x1b]8;id=1;http://j\x07\x1b[58:2::1:2:3mab",
	} {
		cases = append(cases, diffCase{name: fmt.Sprintf("join-%d", i), rows: 5, cols: 20, sb: 10,
			chunks: [][]byte{[]byte(s)}})
	}
	checkThen(t, r, cases, "\u0301")
}

// TestSnapshotKeepsTheJoinThroughACharset: the character the snapshot
// prints again for a combining mark to join goes through the charset GL
// has (DEC graphics, or one DECRC restored apart from the designations).
func TestSnapshotKeepsTheJoinThroughACharset(t *testing.T) {
	r := startRenderer(t)
	var cases []diffCase
	for i, s := range []string{
		"\x1b(0aq",
		"\x1b)0\x0eq\x1b7\x0fq\x1b8q",
		"\x1b[3;5H\x1b[1;32m\x1b(0\x1b7\x1b[m\x1b(B\x1b[10;10Hx\x1b8q",
		"\x1b(Ka#[",
	} {
		cases = append(cases, diffCase{name: fmt.Sprintf("join-%d", i), rows: 5, cols: 20, sb: 10,
			chunks: [][]byte{[]byte(s)}})
	}
	if failed := checkCases(t, r, cases, false); failed > 0 {
		t.Fatalf("%d of %d differ", failed, len(cases))
	}
	checkThen(t, r, cases, "\u0301")
}

// checkThen compares xterm.js after each case's stream and then more with
// xterm.js after vt's snapshot of the case and then more: a client
// attached all along with a late one.
func checkThen(t *testing.T, r *xtermjs.Renderer, cases []diffCase, more string) {
	t.Helper()
	var reqs []xtermjs.Request
	for _, c := range cases {
		snap := runVT(c).AppendSnapshot(nil)
		reqs = append(reqs,
			xtermjs.Request{Rows: c.rows, Cols: c.cols, Scrollback: c.sb, Chunks: append(append([][]byte(nil), c.chunks...), []byte(more))},
			xtermjs.Request{Rows: c.rows, Cols: c.cols, Scrollback: c.sb, Chunks: [][]byte{snap, []byte(more)}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := r.RenderBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	for i, c := range cases {
		if d := xtermjs.Diff(st[2*i], st[2*i+1]); len(d) > 0 {
			t.Errorf("%s then %q: a late client differs:\n%s", c.name, more, limitLines(d, 10))
		}
	}
}
