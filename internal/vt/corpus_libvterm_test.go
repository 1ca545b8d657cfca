package vt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// vtermQuery is a screen query of a libvterm test: what the screen shows
// after the first chunks of its case's stream.
type vtermQuery struct {
	where  string // file:line
	cas    int    // index into the cases
	chunks int    // how many chunks of the case precede it
	// kind is "chars" (a rectangle's text, also ?screen_row and, as
	// UTF-8 bytes, ?screen_text) or "cursor".
	kind           string
	r0, c0, r1, c1 int
	want           string // text, or "row,col" for the cursor
}

var (
	vtermRowRe    = regexp.MustCompile(`^\?screen_row\s+(\d+)\s*=\s*(.*)$`)
	vtermCharsRe  = regexp.MustCompile(`^\?screen_(chars|text)\s+(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\s*=\s*(.*)$`)
	vtermCursorRe = regexp.MustCompile(`^\?cursor\s*=\s*(\d+),\s*(\d+)$`)
	vtermResizeRe = regexp.MustCompile(`^RESIZE\s+(\d+),\s*(\d+)$`)
	vtermSeqRe    = regexp.MustCompile(`^\$SEQ\s+(\d+)\s+(\d+):\s*(.*)$`)
	vtermRepRe    = regexp.MustCompile(`^\$REP\s+(\d+):\s*(.*)$`)
)

// vtermString decodes a test's double-quoted string (Perl escapes, and
// Perl's "s"xN repetition).
func vtermString(s string) (string, error) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, `"x`); i > 0 {
		if n, err := strconv.Atoi(s[i+2:]); err == nil {
			one, err := vtermString(s[:i+1])
			return strings.Repeat(one, n), err
		}
	}
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", fmt.Errorf("not a quoted string: %s", s)
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'e':
			b.WriteByte(0x1b)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'a':
			b.WriteByte(7)
		case 'b':
			b.WriteByte(8)
		case 'x':
			j := i + 1
			for j < len(s) && j < i+3 && strings.IndexByte("0123456789abcdefABCDEF", s[j]) >= 0 {
				j++
			}
			v, _ := strconv.ParseUint(s[i+1:j], 16, 8)
			b.WriteByte(byte(v))
			i = j - 1
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// loadVtermTests reads libvterm test files into cases (a new one at each
// RESET; libvterm starts at 25x80) and the screen queries in them.
func loadVtermTests(t *testing.T, files []string) ([]diffCase, []vtermQuery) {
	var cases []diffCase
	var queries []vtermQuery
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rows, cols := 25, 80
		cur := -1
		newCase := func() {
			cases = append(cases, diffCase{name: fmt.Sprintf("%s#%d", filepath.Base(f), len(cases)), rows: rows, cols: cols, sb: 1000})
			cur = len(cases) - 1
		}
		var do func(where, line string)
		do = func(where, line string) {
			line = strings.TrimSpace(line)
			if m := vtermSeqRe.FindStringSubmatch(line); m != nil {
				lo, _ := strconv.Atoi(m[1])
				hi, _ := strconv.Atoi(m[2])
				for v := lo; v <= hi; v++ {
					do(where, strings.ReplaceAll(m[3], `\#`, strconv.Itoa(v)))
				}
				return
			}
			if m := vtermRepRe.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				for range n {
					do(where, m[2])
				}
				return
			}
			switch {
			case line == "RESET" || (cur < 0 && strings.HasPrefix(line, "PUSH ")):
				newCase()
				if line == "RESET" {
					return
				}
			}
			c := func() *diffCase { return &cases[cur] }
			if m := vtermResizeRe.FindStringSubmatch(line); m != nil {
				rows, _ = strconv.Atoi(m[1])
				cols, _ = strconv.Atoi(m[2])
				if cur >= 0 {
					c().resizes = append(c().resizes, xtermjs.Resize{Before: len(c().chunks), Rows: rows, Cols: cols})
				}
				return
			}
			if p, ok := strings.CutPrefix(line, "PUSH "); ok {
				s, err := vtermString(p)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				c().chunks = append(c().chunks, []byte(s))
				return
			}
			q := vtermQuery{where: where, cas: cur}
			switch m := []string(nil); {
			case strings.HasPrefix(line, "?") && cur < 0:
				return
			case vtermRowRe.MatchString(line):
				m = vtermRowRe.FindStringSubmatch(line)
				q.kind = "chars"
				q.r0, _ = strconv.Atoi(m[1])
				q.r1, q.c0, q.c1 = q.r0+1, 0, cols
				if strings.HasPrefix(strings.TrimSpace(m[2]), `"`) {
					q.want, err = vtermString(m[2])
				} else {
					q.want, err = vtermCodePoints(m[2])
				}
			case vtermCharsRe.MatchString(line):
				m = vtermCharsRe.FindStringSubmatch(line)
				q.kind = "chars"
				q.r0, _ = strconv.Atoi(m[2])
				q.c0, _ = strconv.Atoi(m[3])
				q.r1, _ = strconv.Atoi(m[4])
				q.c1, _ = strconv.Atoi(m[5])
				switch {
				case strings.HasPrefix(strings.TrimSpace(m[6]), `"`):
					q.want, err = vtermString(m[6])
				case m[1] == "chars":
					q.want, err = vtermCodePoints(m[6])
				default:
					q.want, err = vtermBytes(m[6])
				}
			case vtermCursorRe.MatchString(line):
				m = vtermCursorRe.FindStringSubmatch(line)
				q.kind, q.want = "cursor", m[1]+","+m[2]
			default:
				return // callbacks, attributes, damage: not screen contents
			}
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			q.chunks = len(cases[cur].chunks)
			queries = append(queries, q)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			do(fmt.Sprintf("%s:%d", filepath.Base(f), n), sc.Text())
		}
	}
	return cases, queries
}

// vtermBytes decodes ?screen_text's 0x41,0x42 list.
func vtermBytes(s string) (string, error) {
	var b []byte
	for _, f := range strings.Split(strings.TrimSpace(s), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(f, "0x"), 16, 8)
		if err != nil {
			return "", err
		}
		b = append(b, byte(v))
	}
	return string(b), nil
}

// vtermCodePoints decodes ?screen_chars's 0xc1,0xe9 list of code points.
func vtermCodePoints(s string) (string, error) {
	var b strings.Builder
	for _, f := range strings.Split(strings.TrimSpace(s), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(f, "0x"), 16, 32)
		if err != nil {
			return "", err
		}
		b.WriteRune(rune(v))
	}
	return b.String(), nil
}

// vtermAnswer answers a query from a state as libvterm's screen does:
// empty cells count only as padding before later text, rows are joined by
// a line feed; the cursor is never past the last column.
func vtermAnswer(st xtermjs.State, q vtermQuery) string {
	if q.kind == "cursor" {
		return fmt.Sprintf("%d,%d", st.CursorY, min(st.CursorX, st.Cols-1))
	}
	var b strings.Builder
	for r := q.r0; r < q.r1 && r < len(st.Lines); r++ {
		pad := 0
		row := st.Lines[r]
		for c := q.c0; c < q.c1 && c < len(row); c++ {
			switch cell := row[c]; {
			case cell.Width == 0 && cell.Chars == "":
			case cell.Chars == "":
				pad++
			default:
				b.WriteString(strings.Repeat(" ", pad))
				pad = 0
				b.WriteString(cell.Chars)
			}
		}
		if r < q.r1-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TestCorpusLibvtermScreenTests runs libvterm's screen tests
// (testdata/libvterm-screen-tests) through vt. xterm.js is the reference:
// at every screen query vt must answer as xterm.js does; each case's whole
// stream is also compared cell for cell, round-tripped through a snapshot
// and probed. Where xterm.js answers otherwise than libvterm expects, the
// test says so.
func TestCorpusLibvtermScreenTests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "libvterm-screen-tests", "*.test"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no libvterm tests: %v", err)
	}
	cases, queries := loadVtermTests(t, files)
	var whole []diffCase
	skip := map[int]bool{}
	for i, c := range cases {
		for _, rz := range c.resizes {
			if rz.Cols < 2 {
				// xterm.js needs two columns (vt clamps to two).
				skip[i] = true
				t.Logf("%s: skipped: resized to %d column", c.name, rz.Cols)
			}
		}
		if len(c.chunks) > 0 && !skip[i] {
			whole = append(whole, c)
		}
	}
	var kept []vtermQuery
	for _, q := range queries {
		if !skip[q.cas] {
			kept = append(kept, q)
		}
	}
	queries = kept
	r := startRenderer(t)
	failed := checkCases(t, r, whole, true)
	t.Logf("%d of %d cases: vt matches xterm.js (and its snapshot a client attached all along)", len(whole)-failed, len(whole))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reqs := make([]xtermjs.Request, len(queries))
	prefixes := make([]diffCase, len(queries))
	for i, q := range queries {
		c := cases[q.cas]
		p := diffCase{name: c.name, rows: c.rows, cols: c.cols, sb: c.sb, chunks: c.chunks[:q.chunks]}
		for _, rz := range c.resizes {
			if rz.Before <= q.chunks {
				rz.Before = min(rz.Before, q.chunks)
				p.resizes = append(p.resizes, rz)
			}
		}
		prefixes[i] = p
		reqs[i] = xtermjs.Request{Rows: p.rows, Cols: p.cols, Scrollback: p.sb, Chunks: p.chunks, Resizes: p.resizes}
	}
	states, err := r.RenderBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	sameAsXterm, xtermAsLibvterm := 0, 0
	for i, q := range queries {
		ref := vtermAnswer(states[i], q)
		got := vtermAnswer(stateOf(runVT(prefixes[i])), q)
		if got == ref {
			sameAsXterm++
		} else {
			t.Errorf("%s: vt answers %q, xterm.js %q", q.where, got, ref)
		}
		if ref == q.want {
			xtermAsLibvterm++
		} else {
			t.Logf("%s: xterm.js answers %q, libvterm expects %q", q.where, ref, q.want)
		}
	}
	t.Logf("%d of %d queries: vt answers as xterm.js; xterm.js as libvterm expects on %d", sameAsXterm, len(queries), xtermAsLibvterm)
}
