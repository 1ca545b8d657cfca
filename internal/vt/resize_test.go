package vt

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// resizeStreams are written before, between and after resizes.
var resizeStreams = []string{
	strings.Repeat("word ", 60) + "\r\n" + strings.Repeat("line\r\n", 30) + strings.Repeat("ab", 70),
	strings.Repeat("中文字", 30) + "\r\nx\r\n" + strings.Repeat("0123456789", 13) + "\r\n$ ",
	"\x1b[41m" + strings.Repeat("red ", 30) + "\x1b[m\r\n" + strings.Repeat("y\r\n", 50) + "\x1b7" + strings.Repeat("z", 100),
	"e\u0301" + strings.Repeat("é", 90) + "\r\n\x1b[?1049h" + strings.Repeat("alt ", 40) + "\x1b[?1049l" + "back",
	strings.Repeat("q", 79) + "中" + strings.Repeat("w", 200),
}

// TestXtermResize compares resizes (rows and columns, wider and narrower,
// with soft-wrapped lines to reflow) with xterm.js.
func TestXtermResize(t *testing.T) {
	r := startRenderer(t)
	sizes := [][2]int{{24, 80}, {24, 40}, {10, 33}, {30, 100}, {5, 20}, {24, 81}, {40, 132}, {24, 79}}
	rng := rand.New(rand.NewPCG(11, 12))
	var cases []diffCase
	for si, s := range resizeStreams {
		for k := 0; k < 24; k++ {
			d := []byte(s)
			chunks := splitRunes(rng, d, 4)
			var rs []xtermjs.Resize
			for c := 1; c <= len(chunks); c++ {
				if rng.IntN(3) > 0 {
					sz := sizes[rng.IntN(len(sizes))]
					rs = append(rs, xtermjs.Resize{Before: c, Rows: sz[0], Cols: sz[1]})
				}
			}
			// Not 0: see the scrollback-0 reflow deviation in doc.go.
			sb := []int{3, 10, 1000}[k%3]
			cases = append(cases, diffCase{name: fmt.Sprintf("resize-%d-%d", si, k), rows: 24, cols: 80, sb: sb, chunks: chunks, resizes: rs})
		}
	}
	// Recordings with the window resized under the program, twice.
	recs, err := xtermjs.LoadRecordings()
	if err != nil {
		t.Fatalf("load recordings: %v", err)
	}
	for _, rec := range recs {
		mid := len(rec.Chunks) / 2
		cases = append(cases, diffCase{
			name: rec.File + "/resized", rows: rec.Rows, cols: rec.Cols, sb: 1000, chunks: rec.Chunks,
			resizes: []xtermjs.Resize{{Before: mid, Rows: rec.Rows + 5, Cols: rec.Cols - 23}, {Before: len(rec.Chunks), Rows: rec.Rows - 3, Cols: rec.Cols + 17}},
		})
	}
	failed := checkCases(t, r, cases, true)
	t.Logf("%d of %d resize cases match xterm.js", len(cases)-failed, len(cases))
}
