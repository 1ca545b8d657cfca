package vt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// stateCorpus is every stream the fidelity tests use, as cases: the
// synthetic streams, xterm.js's escape sequence files, libvterm's screen
// tests, the recordings and seeded random streams.
func stateCorpus(t *testing.T) []diffCase {
	t.Helper()
	cases := syntheticCases()
	ins, _ := filepath.Glob(filepath.Join("testdata", "xtermjs-escape-sequence-files", "*.in"))
	for _, in := range ins {
		raw, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
		cases = append(cases, diffCase{name: filepath.Base(in), rows: 25, cols: 80, sb: 1000, chunks: [][]byte{data}})
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "libvterm-screen-tests", "*.test"))
	vterm, _ := loadVtermTests(t, files)
	cases = append(cases, vterm...)
	recs, err := xtermjs.LoadRecordings()
	if err != nil {
		t.Fatalf("load recordings: %v", err)
	}
	for _, rec := range recs {
		for _, sb := range []int{1000, 10} {
			cases = append(cases, diffCase{name: fmt.Sprintf("%s/sb%d", rec.File, sb), rows: rec.Rows, cols: rec.Cols, sb: sb, chunks: rec.Chunks})
		}
	}
	rng := rand.New(rand.NewPCG(16, 2026))
	sizes := [][3]int{{24, 80, 100}, {10, 20, 5}, {5, 12, 0}, {8, 40, 1000}}
	for i := range 200 {
		sz := sizes[i%len(sizes)]
		d := randomStream(rng, 50+rng.IntN(800))
		c := diffCase{name: fmt.Sprintf("random-%d", i), rows: sz[0], cols: sz[1], sb: sz[2], chunks: splitRunes(rng, d, 3)}
		if i%4 == 1 {
			c.resizes = []xtermjs.Resize{{Before: rng.IntN(len(c.chunks) + 1), Rows: 3 + rng.IntN(30), Cols: 5 + rng.IntN(100)}}
		}
		cases = append(cases, c)
	}
	if len(ins) == 0 || len(files) == 0 {
		t.Fatal("fidelity corpora missing from testdata")
	}
	return cases
}

// roundTrip decodes t's encoded state.
func roundTrip(tb testing.TB, term *Terminal) *Terminal {
	tb.Helper()
	enc := term.AppendState(nil)
	got, err := DecodeState(enc)
	if err != nil {
		tb.Fatalf("decode the state just encoded: %v", err)
	}
	// The decoded terminal keeps nothing of the encoding.
	clear(enc)
	return got
}

// sameTerminal fails unless a and b draw the same snapshot and show the
// same state (cells, modes, cursor, title, ...).
func sameTerminal(tb testing.TB, what string, a, b *Terminal) bool {
	tb.Helper()
	sa, sb := a.AppendSnapshot(nil), b.AppendSnapshot(nil)
	if !bytes.Equal(sa, sb) {
		tb.Errorf("%s: snapshots differ:\n original %q\n  decoded %q", what, limitBytes(sa), limitBytes(sb))
		return false
	}
	if x, y := stateOf(a), stateOf(b); !reflect.DeepEqual(x, y) {
		tb.Errorf("%s: states differ:\n original %+v\n  decoded %+v", what, x, y)
		return false
	}
	return true
}

func limitBytes(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

// continueBoth feeds the same output (and a resize) to a and b, checking
// after each step that they stay the same, replies to queries included.
func continueBoth(tb testing.TB, name string, rng *rand.Rand, a, b *Terminal) {
	tb.Helper()
	more := [][]byte{
		[]byte(probe),
		randomStream(rng, 300),
		[]byte("\x1b[c\x1b[6n\x1b[?2004$p"),
		[]byte(strings.Repeat("more output\r\n", 40)),
	}
	for i, m := range more {
		a.Write(m)
		b.Write(m)
		if !sameTerminal(tb, fmt.Sprintf("%s, then output %d", name, i), a, b) {
			return
		}
		if ra, rb := a.AppendReplies(nil), b.AppendReplies(nil); !bytes.Equal(ra, rb) {
			tb.Errorf("%s, then output %d: replies %q and %q", name, i, ra, rb)
			return
		}
	}
	rows, cols := 3+rng.IntN(30), 5+rng.IntN(100)
	a.Resize(rows, cols)
	b.Resize(rows, cols)
	if !sameTerminal(tb, fmt.Sprintf("%s, then resized to %dx%d", name, rows, cols), a, b) {
		return
	}
	tail := randomStream(rng, 300)
	a.Write(tail)
	b.Write(tail)
	sameTerminal(tb, name+", then resized and more output", a, b)
}

// TestStateRoundTripIsExact: a terminal decoded from its encoded state, for
// every stream of the fidelity corpora, draws the same snapshot and shows
// the same state as the original, and stays the same as it through more
// output, queries and a resize.
func TestStateRoundTripIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 16))
	for _, c := range stateCorpus(t) {
		term := runVT(c)
		got := roundTrip(t, term)
		if !sameTerminal(t, c.name, term, got) {
			continue
		}
		continueBoth(t, c.name, rng, term, got)
	}
}

// TestStateRoundTripMidStream cuts streams anywhere, inside a sequence or a
// UTF-8 character included, carries the terminal across there and feeds
// the rest to it and to the original: they end the same.
func TestStateRoundTripMidStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 16))
	streams := [][]byte{
		[]byte("ab\x1b[3"), []byte("\x1b]0;tit"), []byte("\x1b]8;id=x;http://a\x1b\\li"), []byte("e\xcc"),
		[]byte("\x1bP1$r"), []byte("\x1b[?1;2"), []byte("\x1b[38:2::1:2"), []byte("\x1b(0lqk\x1b)A\x0e#"),
	}
	for range 300 {
		streams = append(streams, randomStream(rng, 50+rng.IntN(1500)))
	}
	for i, d := range streams {
		rows, cols, sb := 3+rng.IntN(25), 2+rng.IntN(90), rng.IntN(60)
		for range 3 {
			cut := rng.IntN(len(d) + 1)
			term := New(rows, cols, Options{Scrollback: sb})
			term.SetAnswerQueries(i%2 == 0)
			term.Write(d[:cut])
			got := roundTrip(t, term)
			name := fmt.Sprintf("stream %d cut at %d of %d (%dx%d, %d)", i, cut, len(d), rows, cols, sb)
			term.Write(d[cut:])
			got.Write(d[cut:])
			if !sameTerminal(t, name, term, got) {
				break
			}
			if ra, rb := term.AppendReplies(nil), got.AppendReplies(nil); !bytes.Equal(ra, rb) {
				t.Errorf("%s: replies %q and %q", name, ra, rb)
				break
			}
		}
	}
}

// TestStateWithLinksKeepsTheirIDs: links opened with an id continue the
// same link after the terminal is carried, and the slots new cells take
// are the ones the original's take.
func TestStateWithLinksKeepsTheirIDs(t *testing.T) {
	term := New(10, 40, Options{Scrollback: 100})
	term.Write([]byte("\x1b]8;id=a;http://x\x1b\\one\x1b]8;;\x1b\\ \x1b]8;;http://y\x1b\\two\x1b]8;;\x1b\\\r\n\x1b[58;5;3;4mul\x1b[m"))
	got := roundTrip(t, term)
	if !reflect.DeepEqual(term.ext.links, got.ext.links) || !reflect.DeepEqual(term.ext.byID, got.ext.byID) ||
		!reflect.DeepEqual(term.ext.slots, got.ext.slots) || !reflect.DeepEqual(term.ext.bySlot, got.ext.bySlot) {
		t.Fatalf("links and slots differ:\n original %+v\n  decoded %+v", term.ext, got.ext)
	}
	more := []byte("\x1b]8;id=a;http://x\x1b\\again\x1b]8;;\x1b\\\x1b[58;5;4;4mnew\x1b[m")
	term.Write(more)
	got.Write(more)
	if !reflect.DeepEqual(term.ext, got.ext) {
		t.Fatalf("after more links:\n original %+v\n  decoded %+v", term.ext, got.ext)
	}
	sameTerminal(t, "links", term, got)
}

// TestStateIsAboutAsLargeAsASnapshot: carrying a terminal costs about as
// many bytes as its snapshot (what was carried before): within a fifth
// for a shell's scrollback of plain lines, within twice for a recording.
func TestStateIsAboutAsLargeAsASnapshot(t *testing.T) {
	term := New(24, 80, Options{Scrollback: 1000})
	for i := range 1100 {
		fmt.Fprintf(term, "scrollback line %d\r\n", i+1)
	}
	state, snap := len(term.AppendState(nil)), len(term.AppendSnapshot(nil))
	t.Logf("1,000 lines of scrollback: state %d bytes, snapshot %d", state, snap)
	if state > snap*12/10 {
		t.Errorf("state %d bytes, snapshot %d", state, snap)
	}
	recs, err := xtermjs.LoadRecordings()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		term := New(rec.Rows, rec.Cols, Options{Scrollback: 1000})
		term.Write(rec.Bytes())
		state, snap := len(term.AppendState(nil)), len(term.AppendSnapshot(nil))
		t.Logf("%s: state %d bytes, snapshot %d", rec.File, state, snap)
		if state > 2*snap+4096 {
			t.Errorf("%s: state %d bytes, snapshot %d", rec.File, state, snap)
		}
	}
}

// TestStateRefusesWhatIsNotOne: truncated, altered and foreign bytes give
// an error or a terminal that works, never a panic.
func TestStateRefusesWhatIsNotOne(t *testing.T) {
	term := New(6, 20, Options{Scrollback: 10})
	term.Write([]byte("\x1b]8;id=a;http://x\x1b\\link\x1b]8;;\x1b\\ 中文 e\u0301\r\n\x1b[1;31mred\x1b[m\r\n" + strings.Repeat("x\r\n", 12) + "\x1b[?1049h\x1b[44malt"))
	enc := term.AppendState(nil)
	if _, err := DecodeState(nil); err == nil {
		t.Error("nothing decoded as a state")
	}
	bad := append([]byte{stateVersion + 1}, enc[1:]...)
	if _, err := DecodeState(bad); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("another version: %v", err)
	}
	for n := range len(enc) {
		if _, err := DecodeState(enc[:n]); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(enc))
		}
	}
	if _, err := DecodeState(append(enc, 0)); err == nil {
		t.Error("a byte after the end: no error")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		b := bytes.Clone(enc)
		for range 1 + rng.IntN(3) {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		got, err := DecodeState(b)
		if err != nil {
			continue
		}
		// Whatever it decoded to takes output and draws.
		got.Write([]byte(probe + "\x1b[2J\x1b]8;;u\x1b\\l"))
		got.Resize(9, 30)
		got.AppendSnapshot(nil)
		got.Compact()
	}
}

// TestStateCoversEveryTerminalField fails when a Terminal, buffer, line or
// scrollback gets a field this encoding does not know of: the encoding
// (termstate.go) must then carry it, or say why not.
func TestStateCoversEveryTerminalField(t *testing.T) {
	known := map[string][]string{
		"Terminal": {"rows", "cols", "scrollbackMax", "normal", "alt", "altActive", "buf", "sb", "pen", "penAttrs",
			"modes", "charsets", "gl", "active", "table", "title", "joinWidth", "state", "collect", "params",
			"fastFinal", "osc", "oscID", "oscMode", "utf8", "utf8Len", "answer", "replies", "ext"},
		// base is the spare window behind lines (slideUp); free, raw,
		// rawHead, rawN and pushed are lines waiting to be encoded and
		// cells kept for reuse: AppendState encodes them.
		"buffer":     {"lines", "base", "x", "y", "scrollTop", "scrollBottom", "tabs", "saved"},
		"scrollback": {"lines", "start", "n", "max", "scratch", "raw", "rawHead", "rawN", "free", "pushed"},
		// chars, pen, plain and textOnly are a plain line's text kept
		// for the scrollback; a decoded line is not plain, which only
		// means its cells are what the scrollback keeps.
		"line": {"cells", "combined", "used", "chars", "pen", "wrapped", "plain", "textOnly"},
		"modes": {"appCursor", "appKeypad", "bracketedPaste", "insert", "origin", "wraparound", "reverseWrap",
			"sendFocus", "convertEOL", "cursorHidden", "syncOutput", "optBlink", "mouse", "mouseEnc", "cursorStyle",
			"blinkSet", "cursorBlink"},
		"pen":         {"fg", "bg", "flags", "hasExt", "ulStyle", "link", "ulColor"},
		"savedCursor": {"x", "y", "fg", "bg", "flags", "hasExt", "charset"},
		"params":      {"vals", "n", "sub", "subN", "subStart", "subEnd", "rejectDig", "rejectSub", "digitSub"},
		"extTable":    {"slots", "bySlot", "free", "links", "byID", "freeLinks"},
		"cell":        {"ch", "fg", "bg", "cellTail"},
		"cellTail":    {"flags", "ul", "wx"},
	}
	for _, v := range []any{Terminal{}, buffer{}, scrollback{}, line{}, modes{}, pen{}, savedCursor{}, params{}, extTable{}, cell{}, cellTail{}} {
		typ := reflect.TypeOf(v)
		var have []string
		for i := range typ.NumField() {
			have = append(have, typ.Field(i).Name)
		}
		if !reflect.DeepEqual(have, known[typ.Name()]) {
			t.Errorf("%s has fields %v; termstate.go knows %v: carry the new ones (and raise stateVersion)", typ.Name(), have, known[typ.Name()])
		}
	}
}

func BenchmarkStateEncode(b *testing.B) {
	term := New(24, 80, Options{Scrollback: 1000})
	for i := range 1100 {
		fmt.Fprintf(term, "scrollback line %d\r\n", i+1)
	}
	b.Run("state", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = term.AppendState(buf[:0])
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("snapshot", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = term.AppendSnapshot(buf[:0])
		}
		b.SetBytes(int64(len(buf)))
	})
}

func BenchmarkStateDecode(b *testing.B) {
	term := New(24, 80, Options{Scrollback: 1000})
	for i := range 1100 {
		fmt.Fprintf(term, "scrollback line %d\r\n", i+1)
	}
	state, snap := term.AppendState(nil), term.AppendSnapshot(nil)
	b.Run("state", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeState(state); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("snapshot-parse", func(b *testing.B) {
		for b.Loop() {
			New(24, 80, Options{Scrollback: 1000}).Write(snap)
		}
	})
}

// FuzzDecodeState: whatever the bytes, DecodeState gives an error or a
// terminal that takes output, resizes and draws; never a panic.
func FuzzDecodeState(f *testing.F) {
	term := New(6, 20, Options{Scrollback: 10})
	term.Write([]byte("\x1b]8;id=a;http://x\x1b\\link\x1b]8;;\x1b\\ 中文 e\u0301\r\n\x1b[1;31mred\x1b[m\r\n" + strings.Repeat("x\r\n", 12) + "\x1b[?1049h\x1b[44malt\x1b[3"))
	f.Add(term.AppendState(nil))
	f.Add(New(2, 2, Options{}).AppendState(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeState(data)
		if err != nil {
			return
		}
		got.Write([]byte(probe + "\x1b[2J\x1b]8;;u\x1b\\l"))
		got.Resize(9, 30)
		got.AppendSnapshot(nil)
		got.Compact()
	})
}
