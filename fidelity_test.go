package reconnectingpty

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

// fidelityScrollback is the scrollback both the server (its default) and
// the xterm.js renderings keep, so that their histories compare.
const fidelityScrollback = 1000

// quietFor is how long a stream must be silent to count as settled.
const quietFor = 600 * time.Millisecond

// fidelityCase is one program whose screen a late client must get back.
type fidelityCase struct {
	name string
	// files are written to the test's directory before the program starts
	// (the program finds them in its working directory).
	files map[string][]byte
	// command is a shell script run in that directory.
	command string
	// setup are keys typed by the reference connection before the late
	// one attaches, each followed by a wait for the output to settle.
	setup []string
	// more are keys typed after the first comparison; they make the
	// program produce more output, compared again.
	more []string
	// lateRows, lateCols is the late connection's size (0: 24x80).
	lateRows, lateCols int
	// detached writes the program's first part while nobody is attached:
	// the first connection leaves before it starts (see testFidelityDetached).
	detached bool
	// vim and less name programs the case needs.
	needs string
	// during, if set, is typed by the reference connection right before
	// the late one attaches, which it does as soon as the reference shows
	// duringMark: the late connection joins while output flows.
	during, duringMark string
}

func fidelityCases() []fidelityCase {
	return []fidelityCase{
		{
			name:    "colour_output_larger_than_any_buffer",
			files:   map[string][]byte{"p1": colourLines(0, 40000), "p2": append(colourLines(40000, 50), "\x1b[1;38;2;10;200;30mpen left open: "...)},
			command: "stty -echo; cat p1; read x; cat p2; read x",
			more:    []string{"\r"},
		},
		{
			// The snapshot and the live output after it must meet exactly
			// while the reader, the emulator and the fan-out are all busy.
			name: "late_client_joins_during_a_flood",
			files: map[string][]byte{
				"p1": colourLines(0, 300000),
				"p2": append(colourLines(300000, 10), "\x1b[1;38;2;10;200;30mpen left open: "...),
			},
			command:    "stty -echo; read x; cat p1; read x; cat p2; read x",
			during:     "\r",
			duringMark: "line 3000 ",
			more:       []string{"\r"},
		},
		{
			name:    "less",
			files:   map[string][]byte{"f": plainLines(2000)},
			command: "exec less f",
			setup:   []string{"f", "/line 4\r"},
			more:    []string{"G", "?line 1\r"},
			needs:   "less",
		},
		{
			name:    "vim",
			files:   map[string][]byte{"f": plainLines(300)},
			command: "exec vim.tiny -u NONE -i NONE -N f",
			setup:   []string{":set number\r", "40G", "dd", "ohello from vim\x1b", ":syntax off\r"},
			more:    []string{"5G", "x", "ianother edit\x1b", ":set nonumber\r"},
			needs:   "vim.tiny",
		},
		{
			name:    "top",
			command: "exec top -d 100",
			more:    []string{"c"},
			needs:   "top",
		},
		{
			name:    "wide_and_combining_utf8",
			files:   map[string][]byte{"p1": wideText(), "p2": []byte("after: 中文 e\u0301 한글 \U0001F600\r\n" + strings.Repeat("x", 79) + "字tail\r\n")},
			command: "stty -echo; cat p1; read x; cat p2; read x",
			more:    []string{"\r"},
		},
		{
			name:    "scroll_region",
			files:   map[string][]byte{"p1": scrollRegion(), "p2": regionLines(100, 30)},
			command: "stty -echo; cat p1; read x; cat p2; read x",
			more:    []string{"\r"},
		},
		{
			name: "mouse_paste_hidden_cursor_title",
			files: map[string][]byte{
				"p1": []byte("\x1b[?1002h\x1b[?1006h\x1b[?2004h\x1b[?25l\x1b]0;fidelity title\x07\x1b[?1h\x1b=\x1b[4 qmodes set\r\n\x1b[1;4;38;5;202m"),
				"p2": []byte("printed with the open pen\r\n\x1b[0mplain\r\n"),
			},
			command: "stty -echo; cat p1; read x; cat p2; read x",
			more:    []string{"\r"},
		},
		{
			name:     "one_MiB_while_detached",
			files:    map[string][]byte{"p1": colourLines(100000, 1<<20/40), "p2": []byte("\x1b[7mafter the reattach\x1b[0m\r\n")},
			command:  "stty -echo -opost; printf 'ready\\r\\n'; while [ ! -e go ]; do sleep 0.05; done; cat p1; read x; cat p2; read x",
			more:     []string{"\r"},
			detached: true,
		},
		{
			name:     "late_client_of_another_size_vim",
			files:    map[string][]byte{"f": plainLines(300)},
			command:  "exec vim.tiny -u NONE -i NONE -N f",
			setup:    []string{":set number\r", "100G"},
			more:     []string{"ilonger lines show the width " + strings.Repeat("=", 60) + "\x1b"},
			lateRows: 30, lateCols: 100,
			needs: "vim.tiny",
		},
		{
			name:     "late_client_of_another_size_less",
			files:    map[string][]byte{"f": plainLines(2000)},
			command:  "exec less f",
			setup:    []string{"f"},
			more:     []string{"f"},
			lateRows: 20, lateCols: 60,
			needs: "less",
		},
	}
}

// TestReattachFidelity attaches a connection late to a running program and
// renders it with real xterm.js beside a reference connection that has
// been attached all along: the two must show the same terminal, cell for
// cell, with cursor, buffer and modes; and again after more output, which
// shows whether a scroll region, pen or mode was lost.
func TestReattachFidelity(t *testing.T) {
	r := startRenderer(t)
	for _, tc := range fidelityCases() {
		t.Run(tc.name, func(t *testing.T) {
			requireProgram(t, tc.needs)
			for _, d := range runFidelity(t, r, BackendVT, tc).diffs {
				t.Error(d)
			}
		})
	}
}

// TestReattachFidelityScreen runs the same table on the screen backend,
// whose reference is itself a screen client, so the question is what a
// late screen client shows that an attached one does not. It asserts what
// screen does restore, the visible text, for the cases where it does; the
// full differences are logged (-v). What screen cannot restore, measured
// on this table (screen 4.9):
//
//   - scrollback: a late client gets none (the vt backend sends up to
//     ScrollbackLines lines);
//   - the scroll region and pen of the client's terminal (screen keeps them
//     in its own emulation, so later output still lands right);
//   - blank cells: screen repaints printed spaces as erased cells and the
//     other way round, and colours the wrong cells' backgrounds in some
//     less and vim screens; soft wraps of vim's lines;
//   - top's screen differs in most cells (screen repaints from its own
//     copy, redrawn by top at a different moment);
//   - output written while nobody is attached comes back through screen's
//     own rendering, not byte for byte: 200+ cells differ from xterm.js fed
//     the program's bytes;
//   - a late client of another size: the program's redraw and screen's
//     repaint disagree on the cursor and most cells.
func TestReattachFidelityScreen(t *testing.T) {
	requireScreen(t)
	r := startRenderer(t)
	// screenRestoresText lists the cases whose visible text (not
	// attributes, blanks or scrollback) a late screen client gets back.
	screenRestoresText := map[string]bool{
		"colour_output_larger_than_any_buffer": true,
		"wide_and_combining_utf8":              true,
		"scroll_region":                        true,
		"mouse_paste_hidden_cursor_title":      true,
	}
	for _, tc := range fidelityCases() {
		t.Run(tc.name, func(t *testing.T) {
			requireProgram(t, tc.needs)
			res := runFidelity(t, r, BackendScreen, tc)
			for _, d := range res.diffs {
				t.Log(d)
			}
			if !screenRestoresText[tc.name] {
				return
			}
			for _, cmp := range res.compared {
				if w, g := cmp.want.Text(), cmp.got.Text(); w != g {
					t.Errorf("%s: screen's late client shows\n%s\nwant\n%s", cmp.when, g, w)
				}
			}
		})
	}
}

// startRenderer starts xterm.js for the test; it fails (never skips) when
// it is not installed, as .ci/run installs it.
func startRenderer(t *testing.T) *xtermjs.Renderer {
	t.Helper()
	r, err := xtermjs.Start(context.Background())
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func requireProgram(t *testing.T, name string) {
	t.Helper()
	if name == "" {
		return
	}
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (.ci/run installs it): %v", name, err)
	}
}

// fidelityResult is what runFidelity compared and the differences found,
// each prefixed with the comparison it comes from.
type fidelityResult struct {
	diffs    []string
	compared []comparison
}

// comparison is one reference rendering and the late client's.
type comparison struct {
	when      string
	want, got xtermjs.State
}

func (res *fidelityResult) compare(when string, want, got xtermjs.State) {
	want, got = visible(want), visible(got)
	res.compared = append(res.compared, comparison{when, want, got})
	for _, d := range xtermjs.Diff(want, got) {
		res.diffs = append(res.diffs, when+": "+d)
	}
}

// runFidelity runs one case on backend.
func runFidelity(t *testing.T, r *xtermjs.Renderer, backend BackendType, tc fidelityCase) *fidelityResult {
	t.Helper()
	dir := t.TempDir()
	for name, data := range tc.files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The test's clients keep all output in memory and may fall behind a
	// flood (the race detector slows them most): a queue that holds all
	// of it keeps either from being cut off as a slow consumer, which is
	// not what these cases are about.
	ts := newTestServer(t, backend, Config{ConnQueueSize: 64 << 20})
	id := uuid.New()
	script := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(script, []byte("cd "+dir+" || exit 1\n"+tc.command+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	command := "sh " + script
	if tc.detached {
		return runFidelityDetached(t, r, ts, id, dir, command, tc)
	}
	ref := ts.connect(Init{ID: id, Command: command})
	settle(ref)
	for _, keys := range tc.setup {
		ref.send(Request{Data: keys})
		settle(ref)
	}
	rows, cols := 24, 80
	if tc.lateRows != 0 {
		rows, cols = tc.lateRows, tc.lateCols
	}
	if tc.during != "" {
		ref.send(Request{Data: tc.during})
		ref.expect(tc.duringMark)
	}
	joinedAt := len(ref.output())
	late := ts.connect(Init{ID: id, Height: uint16(rows), Width: uint16(cols)})
	settle(late)
	settle(ref)
	if tc.during != "" {
		// A snapshot holds at most the screen and the scrollback: more
		// lines than that reached the late connection live, so it joined
		// while the output flowed.
		if n := strings.Count(late.output(), tc.duringMark[:5]); n <= fidelityScrollback+rows {
			t.Fatalf("the late connection got %d lines, no more than a snapshot holds: it joined after the output, and the case shows nothing", n)
		}
	}

	res := &fidelityResult{}
	compare := func(when string) {
		refOut := []byte(ref.output())
		want := renderXterm(t, r, 24, 80, [][]byte{refOut[:joinedAt], refOut[joinedAt:]}, rows, cols)
		got := renderXterm(t, r, rows, cols, [][]byte{[]byte(late.output())}, rows, cols)
		res.compare(when, want, got)
		if len(res.diffs) > 0 && testing.Verbose() {
			t.Logf("%s: reference screen:\n%s\nlate screen:\n%s", when, want.Text(), got.Text())
		}
	}
	compare("on attach")
	for _, keys := range tc.more {
		ref.send(Request{Data: keys})
		settle(ref)
	}
	settle(late)
	compare("after more output")
	return res
}

// runFidelityDetached: the first connection starts the program and leaves;
// the program then writes p1 with nobody attached. Its output is exactly
// the files (the PTY does no output processing, -opost), so the reference
// is xterm.js fed what the first connection saw and then the files.
func runFidelityDetached(t *testing.T, r *xtermjs.Renderer, ts *testServer, id uuid.UUID, dir, command string, tc fidelityCase) *fidelityResult {
	t.Helper()
	first := ts.connect(Init{ID: id, Command: command})
	first.expect("ready\r\n")
	settle(first)
	firstOut := []byte(first.output())
	first.close()
	ts.waitForCloses(1)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p1, p2 := tc.files["p1"], tc.files["p2"]
	waitForCat(t, ts)

	late := ts.connect(Init{ID: id})
	settle(late)
	res := &fidelityResult{}
	compare := func(when string, chunks [][]byte) {
		want := renderXterm(t, r, 24, 80, chunks, 24, 80)
		got := renderXterm(t, r, 24, 80, [][]byte{[]byte(late.output())}, 24, 80)
		res.compare(when, want, got)
	}
	compare("on attach", [][]byte{firstOut, p1})
	for _, keys := range tc.more {
		late.send(Request{Data: keys})
	}
	late.expect("after the reattach")
	settle(late)
	compare("after more output", [][]byte{firstOut, p1, p2})
	return res
}

// waitForCat waits until the session's cat has written its file: once the
// process is gone, its output is in the PTY, and a moment later in the core.
func waitForCat(t *testing.T, ts *testServer) {
	t.Helper()
	deadline := time.Now().Add(longWait)
	for {
		if !catRunning(ts.marker) {
			// Give the core's reader the PTY's last bytes.
			time.Sleep(quietFor)
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the program did not finish writing while detached")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// catRunning reports whether a cat of the session marked marker runs.
func catRunning(marker string) bool {
	for _, pid := range markedProcesses(marker) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) == "cat" {
			return true
		}
	}
	return false
}

// visible drops what xterm.js keeps past the right edge after a resize
// narrows it (alternate-screen cells and tab stops beyond the last
// column): no client can see them, and a late client drawn at the
// narrower size never had them.
func visible(st xtermjs.State) xtermjs.State {
	trim := func(lines [][]xtermjs.Cell) [][]xtermjs.Cell {
		out := make([][]xtermjs.Cell, len(lines))
		for i, l := range lines {
			out[i] = l[:min(len(l), st.Cols)]
		}
		return out
	}
	st.Lines = trim(st.Lines)
	if st.NormalLines != nil {
		st.NormalLines = trim(st.NormalLines)
	}
	var tabs []int
	for _, x := range st.Tabs {
		if x < st.Cols {
			tabs = append(tabs, x)
		}
	}
	st.Tabs = tabs
	return st
}

// renderXterm renders chunks in a fresh xterm.js of rows x cols, resized to
// endRows x endCols before the second chunk.
func renderXterm(t *testing.T, r *xtermjs.Renderer, rows, cols int, chunks [][]byte, endRows, endCols int) xtermjs.State {
	t.Helper()
	req := xtermjs.Request{Rows: rows, Cols: cols, Scrollback: fidelityScrollback, Chunks: chunks}
	if endRows != rows || endCols != cols {
		req.Resizes = []xtermjs.Resize{{Before: 1, Rows: endRows, Cols: endCols}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), longWait)
	defer cancel()
	st, err := r.Render(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// settle waits until tc's output has been silent for quietFor.
func settle(tc *testClient) {
	tc.t.Helper()
	deadline := time.Now().Add(longWait)
	n := -1
	for {
		cur := len(tc.output())
		if cur == n {
			return
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("output never settled; output:\n%q", tail(tc.output()))
		}
		n = cur
		time.Sleep(quietFor)
	}
}

// colourLines is n lines of text in changing colours and attributes
// (palette, 256-colour and true colour), numbered from first.
func colourLines(first, n int) []byte {
	var b bytes.Buffer
	for i := first; i < first+n; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "\x1b[3%dmline %d palette\x1b[0m\r\n", i%8, i)
		case 1:
			fmt.Fprintf(&b, "\x1b[1;38;5;%dmline %d bold 256\x1b[22;39m plain\r\n", i%256, i)
		case 2:
			fmt.Fprintf(&b, "\x1b[48;2;%d;%d;%dmline %d true colour\x1b[49m\r\n", i%256, (i*7)%256, (i*13)%256, i)
		default:
			fmt.Fprintf(&b, "\x1b[3;4mline %d italic underlined\x1b[m %s\r\n", i, strings.Repeat("-", i%70))
		}
	}
	return b.Bytes()
}

// plainLines is a text file of n numbered lines of varying length.
func plainLines(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("abc ", i%19))
	}
	return b.Bytes()
}

// wideText mixes wide and combining characters, with wide characters
// landing on the last column (which wraps them whole) and just before it.
func wideText() []byte {
	var b bytes.Buffer
	b.WriteString("combining: e\u0301 a\u0308 n\u0303; emoji \U0001F44D\U0001F3FD; flags \U0001F1EB\U0001F1F7\r\n")
	b.WriteString(strings.Repeat("a", 79) + "中" + "after the wrap\r\n")
	b.WriteString(strings.Repeat("b", 78) + "字" + "exactly fits\r\n")
	for i := 0; i < 40; i++ {
		b.WriteString(strings.Repeat("漢字", 10+i%30) + "\r\n")
	}
	b.WriteString(strings.Repeat("c", 79) + "한")
	return b.Bytes()
}

// scrollRegion draws a header and footer and scrolls lines between them.
func scrollRegion() []byte {
	var b bytes.Buffer
	b.WriteString("\x1b[2J\x1b[H\x1b[7m header \x1b[0m\x1b[24;1H\x1b[7m footer \x1b[0m\x1b[3;20r\x1b[3;1H")
	b.Write(regionLines(0, 100))
	return b.Bytes()
}

func regionLines(first, n int) []byte {
	var b bytes.Buffer
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&b, "region line %d\r\n", i)
	}
	return b.Bytes()
}
