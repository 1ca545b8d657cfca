package vt

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// TestCorpusXtermEscapeSequenceFiles runs xterm.js's escape sequence files
// (testdata/xtermjs-escape-sequence-files: streams other people wrote, with
// the screens xterm showed for them) through vt. xterm.js is the reference:
// vt must match it cell for cell and survive the snapshot round trip and
// probe; where xterm.js itself differs from xterm's screen the test says so.
func TestCorpusXtermEscapeSequenceFiles(t *testing.T) {
	dir := filepath.Join("testdata", "xtermjs-escape-sequence-files")
	ins, err := filepath.Glob(filepath.Join(dir, "*.in"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no .in files in %s: %v", dir, err)
	}
	var cases []diffCase
	var texts []string
	for _, in := range ins {
		raw, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(in, ".in") + ".text")
		if err != nil {
			t.Fatal(err)
		}
		// xterm.js replays them through a PTY, whose line discipline
		// turns LF into CR LF (ONLCR); all are for 80x25.
		data := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
		cases = append(cases, diffCase{name: filepath.Base(in), rows: 25, cols: 80, sb: 1000, chunks: [][]byte{data}})
		texts = append(texts, string(want))
	}
	r := startRenderer(t)
	failed := checkCases(t, r, cases, true)
	t.Logf("%d of %d files: vt matches xterm.js (and its snapshot a client attached all along)", len(cases)-failed, len(cases))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reqs := make([]xtermjs.Request, len(cases))
	for i, c := range cases {
		reqs[i] = xtermjs.Request{Rows: c.rows, Cols: c.cols, Scrollback: c.sb, Chunks: c.chunks}
	}
	states, err := r.RenderBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	agree := 0
	for i, c := range cases {
		got, want := states[i].Text(), expectedScreen(texts[i], c.rows)
		if got == want {
			agree++
			continue
		}
		t.Logf("%s: xterm.js differs from xterm's screen (.text):\n%s", c.name, lineDiff(want, got))
	}
	t.Logf("%d of %d files: xterm.js shows xterm's screen", agree, len(cases))
}

// expectedScreen is a .text file as State.Text writes a screen: rows lines,
// right-trimmed.
func expectedScreen(s string, rows int) string {
	lines := strings.Split(s, "\n")
	for len(lines) < rows {
		lines = append(lines, "")
	}
	lines = lines[:rows]
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return strings.Join(lines, "\n")
}

// lineDiff lists the rows that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "  row %d: xterm    %q\n          xterm.js %q\n", i, wl, gl)
		}
	}
	return b.String()
}
