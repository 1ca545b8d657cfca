package vt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// FuzzParser feeds arbitrary bytes: the terminal never panics, a stream
// split anywhere (and its scrollback compacted at the split) ends in the
// same state as written whole, and a snapshot
// written to a fresh terminal reproduces the state (unless the snapshot
// reports itself lossy, a deviation listed in doc.go).
func FuzzParser(f *testing.F) {
	for _, s := range synthetic {
		f.Add([]byte(s.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkInvariants(t, data, 10, 30, 20)
	})
}

func checkInvariants(t *testing.T, data []byte, rows, cols, sb int) {
	t.Helper()
	whole := New(rows, cols, Options{Scrollback: sb})
	whole.Write(data)
	split := New(rows, cols, Options{Scrollback: sb})
	if len(data) > 0 {
		a := int(data[0]) % len(data)
		b := a + int(data[len(data)-1])%(len(data)-a)
		split.Write(data[:a])
		// Lines scrolled off so far are encoded here, the rest later:
		// when does not change what the scrollback holds.
		split.Compact()
		split.Write(data[a:b])
		split.Write(data[b:])
	}
	want := stateOf(whole)
	snap, lossy := whole.snapshot(nil)
	// A wide character that lost its right half is a state that, in
	// xterm.js too, depends on where writes begin and end: vt matches
	// xterm.js either way (TestSplitWriteAtAWideCharacterFollowsXterm).
	if _, splitLossy := split.snapshot(nil); !halfWide(lossy) && !halfWide(splitLossy) {
		if d := xtermjs.Diff(want, stateOf(split)); len(d) > 0 {
			t.Fatalf("split writes differ from one write:\n%s", limitLines(d, 10))
		}
	}
	if whole.state != split.state || whole.joinWidth != split.joinWidth {
		t.Fatalf("split writes leave parser state %d/join %d, one write %d/%d", split.state, split.joinWidth, whole.state, whole.joinWidth)
	}
	if len(lossy) > 0 {
		return
	}
	again := New(rows, cols, Options{Scrollback: sb})
	again.Write([]byte("garbage \x1b[31m\x1b[?1049h\x1b]0;x")) // any prior state
	again.Write(snap)
	if d := xtermjs.Diff(want, stateOf(again)); len(d) > 0 {
		t.Fatalf("snapshot %q does not reproduce the state:\n%s", snap, limitLines(d, 10))
	}
	if again.state != whole.state {
		t.Fatalf("snapshot leaves parser state %d, want %d", again.state, whole.state)
	}
}

// halfWide reports whether a snapshot's losses include a wide character
// without its right half.
func halfWide(lossy []string) bool {
	for _, l := range lossy {
		if strings.Contains(l, "wide character without its right half") {
			return true
		}
	}
	return false
}

// randomStream builds a stream of text and control sequences a program
// might send, from rng.
func randomStream(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	texts := []string{"hello", "x", " ", "中文", "e\u0301", "\u0308", "\U0001F600", "ab\tc", "\u2764\uFE0F", "ｱ", "q"}
	finals := "ABCDEFGHIJKLMPSTXZ`abdefghlmrsu@"
	modes := []int{1, 6, 7, 12, 25, 45, 47, 66, 1000, 1002, 1003, 1004, 1006, 1016, 1047, 1048, 1049, 2004, 9}
	for b.Len() < n {
		switch rng.IntN(14) {
		case 0, 1, 2:
			b.WriteString(texts[rng.IntN(len(texts))])
		case 3:
			b.WriteString(strings.Repeat("w", rng.IntN(40)))
		case 4:
			b.WriteByte("\r\n\b\t\x0e\x0f\x07"[rng.IntN(7)])
		case 5:
			fmt.Fprintf(&b, "\x1b[%d;%d%c", rng.IntN(30), rng.IntN(90), finals[rng.IntN(len(finals))])
		case 6:
			fmt.Fprintf(&b, "\x1b[%d%c", rng.IntN(12), finals[rng.IntN(len(finals))])
		case 7:
			on := "hl"[rng.IntN(2)]
			fmt.Fprintf(&b, "\x1b[?%d%c", modes[rng.IntN(len(modes))], on)
		case 8:
			sgr := []string{"0", "1", "2", "3", "4", "4:3", "5", "7", "8", "9", "21", "22", "24", "27", "31", "42", "93", "104",
				"38;5;123", "48;2;1;2;3", "38:2::9:8:7", "39", "49", "53", "4:0", "", "58;5;9", "58:2::1:2:3", "59"}
			fmt.Fprintf(&b, "\x1b[%s;%sm", sgr[rng.IntN(len(sgr))], sgr[rng.IntN(len(sgr))])
		case 9:
			esc := []string{"\x1b7", "\x1b8", "\x1bD", "\x1bE", "\x1bH", "\x1bM", "\x1b=", "\x1b>", "\x1b(0", "\x1b(B", "\x1b)0",
				"\x1bn", "\x1b#8", "\x1b[!p", "\x1b[4h", "\x1b[4l", "\x1b[3 q", "\x1b[20h", "\x1b[20l", "\x1b[3g", "\x1bc"}
			b.WriteString(esc[rng.IntN(len(esc))])
		case 10:
			fmt.Fprintf(&b, "\x1b]%d;title %d\x07", rng.IntN(3), rng.IntN(100))
		case 11:
			fmt.Fprintf(&b, "\x1b[%d;%dr", rng.IntN(12), rng.IntN(12))
		case 12:
			fmt.Fprintf(&b, "\x1b[%db", rng.IntN(20))
		case 13:
			more := []string{"\x1bP1$r0m\x1b\\", "\x1b]8;;u\x07", "\x1b]8;;\x07", "\x1b_x\x1b\\", "\x1b[?1;2$p", "\x1b[2J", "\x1b[3J",
				"\x1b[1\"q", "\x1b[0\"q", "\x1b[?2J", "\x1b[?1K", "\x1b[3 @", "\x1b[2 A", "\x1b[2'}", "\x1b[1'~", "\u0085", "\u0088",
				"\x1b[?45h\b\b", "\x1b[5;5H\x1b[1J", "\x1b[K", "\x1b[1K", "\x1b[2K", "\x1b[?1048h", "\x1b(A#", "\x1b[?2h"}
			b.WriteString(more[rng.IntN(len(more))])
		}
	}
	return b.Bytes()
}

// splitRunes cuts d into up to k chunks at random code point boundaries.
func splitRunes(rng *rand.Rand, d []byte, k int) [][]byte {
	var out [][]byte
	for i := 1; i < k && len(d) > 1; i++ {
		at := runeStart(d, 1+rng.IntN(len(d)-1))
		if at == 0 {
			continue
		}
		out = append(out, d[:at])
		d = d[at:]
	}
	return append(out, d)
}

// TestXtermRandom compares a fixed set of seeded random streams with
// xterm.js, then round-trips them through snapshots.
func TestXtermRandom(t *testing.T) {
	r := startRenderer(t)
	rng := rand.New(rand.NewPCG(8, 2026))
	sizes := [][3]int{{24, 80, 100}, {10, 20, 5}, {5, 12, 0}, {8, 40, 1000}}
	var cases []diffCase
	n := 200
	if s := os.Getenv("VT_XTERM_CASES"); s != "" {
		n, _ = strconv.Atoi(s) // a longer hunt by hand
	}
	for i := 0; i < n; i++ {
		sz := sizes[i%len(sizes)]
		d := randomStream(rng, 50+rng.IntN(600))
		c := diffCase{name: fmt.Sprintf("random-%d", i), rows: sz[0], cols: sz[1], sb: sz[2], chunks: splitRunes(rng, d, 3)}
		if i%4 == 1 && os.Getenv("VT_XTERM_NORESIZE") == "" {
			// A resize somewhere (not to a scrollback of 0: see doc.go).
			c.resizes = []xtermjs.Resize{{Before: rng.IntN(len(c.chunks) + 1), Rows: 3 + rng.IntN(30), Cols: 5 + rng.IntN(100)}}
		}
		cases = append(cases, c)
	}
	failed := checkCases(t, r, cases, true)
	t.Logf("%d of %d random cases match xterm.js", len(cases)-failed, len(cases))
}

// TestRandomInvariants runs the fuzz invariants over the seeded streams.
func TestRandomInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 300
	if s := os.Getenv("VT_RANDOM_CASES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for i := 0; i < n; i++ {
		checkInvariants(t, randomStream(rng, 50+rng.IntN(800)), 3+rng.IntN(20), 2+rng.IntN(60), rng.IntN(30))
	}
}

// TestWriteFuzzCorpus refreshes testdata/fuzz/FuzzParser from the synthetic
// streams and pieces of the recordings when VT_WRITE_CORPUS is set.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("VT_WRITE_CORPUS") == "" {
		t.Skip("set VT_WRITE_CORPUS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, d []byte) {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(d)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := xtermjs.LoadRecordings()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if rec.Cols != 80 {
			continue
		}
		d := rec.Bytes()
		for k := 0; k < 3 && k*2048 < len(d); k++ {
			write(fmt.Sprintf("rec-%s-%d", rec.Name, k), d[k*2048:min(len(d), (k+1)*2048)])
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 20; i++ {
		write(fmt.Sprintf("random-%d", i), randomStream(rng, 300))
	}
}
