package vt

import (
	"fmt"
	"strings"
	"testing"

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
	for _, stream := range []string{
		"\x1b]8;;http://j\x07ab",
		"\x1b[4:3;58;5;2mab",
		"\x1b]8;id=1;http://j\x07\x1b[58:2::1:2:3mab",
	} {
		orig := New(5, 20, Options{Scrollback: 10})
		orig.Write([]byte(stream))
		late := New(5, 20, Options{Scrollback: 10})
		late.Write(orig.AppendSnapshot(nil))
		orig.Write([]byte("\u0301"))
		late.Write([]byte("\u0301"))
		if d := xtermjs.Diff(stateOf(orig), stateOf(late)); len(d) > 0 {
			t.Errorf("%q then a combining mark: a late client differs:\n%s", stream, limitLines(d, 10))
		}
	}
}
