package xtermjs

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// recordingChecks say what the end of each recording shows in xterm.js, so
// that a broken or truncated recording is caught before the differential
// tests trust it.
var recordingChecks = map[string]struct {
	buffer string // active buffer at the end
	text   string // on the visible screen
	check  func(t *testing.T, st State)
}{
	"bash-ls": {buffer: "normal", text: "$ echo done\ndone\n$", check: func(t *testing.T, st State) {
		if len(st.Scrollback) < 20 {
			t.Errorf("only %d scrollback lines", len(st.Scrollback))
		}
		if !st.Modes.BracketedPaste {
			t.Error("bash's bracketed paste mode is off")
		}
	}},
	"less": {buffer: "alternate", text: "green bold and underlined magenta text", check: func(t *testing.T, st State) {
		if got := (State{Lines: st.NormalLines}).Text(); !strings.Contains(got, "$ less -R long.txt") {
			t.Errorf("the shell under less is not on the normal screen: %q", got)
		}
	}},
	"vim": {buffer: "alternate", text: "class Shape", check: func(t *testing.T, st State) {
		if st.Title != "vim: sample.py[+]" {
			t.Errorf("title %q", st.Title)
		}
		coloured := 0
		for _, row := range st.Lines {
			for _, c := range row {
				if c.FG != ColorDefault {
					coloured++
				}
			}
		}
		if coloured < 100 {
			t.Errorf("only %d cells with syntax colours", coloured)
		}
	}},
	"top": {buffer: "normal", text: "PID USER", check: func(t *testing.T, st State) {
		if !strings.HasSuffix(st.Text(), "$") && !strings.Contains(st.Text(), "\n$ ") {
			t.Errorf("no shell prompt after top quit:\n%s", st.Text())
		}
	}},
	"htop": {buffer: "alternate", text: "F10Quit", check: func(t *testing.T, st State) {
		if st.Modes.MouseTracking != "vt200" || st.Modes.MouseEncoding != "sgr" || st.CursorVisible {
			t.Errorf("modes %+v cursor visible %v, want htop's mouse mode and a hidden cursor", st.Modes, st.CursorVisible)
		}
	}},
	"git-log": {buffer: "normal", text: "Merge branch 'feature'", check: func(t *testing.T, st State) {
		if !strings.Contains(strings.Join(st.Scrollback, "\n"), "Initial commit") && !strings.Contains(st.Text(), "Initial commit") {
			t.Error("the first commit is nowhere")
		}
	}},
	"utf8": {buffer: "normal", text: "end of sample", check: func(t *testing.T, st State) {
		wide := 0
		for _, row := range st.Lines {
			for _, c := range row {
				if c.Width == 2 {
					wide++
				}
			}
		}
		if wide < 20 {
			t.Errorf("only %d wide cells", wide)
		}
	}},
	"scroll-region": {buffer: "normal", text: "last line in the region", check: func(t *testing.T, st State) {
		if st.ScrollTop != 2 || st.ScrollBottom != st.Rows-3 {
			t.Errorf("region %d..%d, want 2..%d", st.ScrollTop, st.ScrollBottom, st.Rows-3)
		}
		if st.Pen.FG != 4 || st.Pen.Flags != AttrBold {
			t.Errorf("pen %+v, want bold blue", st.Pen)
		}
	}},
	"modes": {buffer: "normal", text: "The modes stay on.", check: func(t *testing.T, st State) {
		want := Modes{ApplicationCursorKeys: true, ApplicationKeypad: true, BracketedPaste: true,
			Wraparound: true, SendFocus: true, MouseTracking: "any", MouseEncoding: "sgr"}
		if st.Modes != want {
			t.Errorf("modes %+v, want %+v", st.Modes, want)
		}
		if st.CursorVisible || st.CursorStyle != "underline" || !st.CursorBlink || st.Title != "modes demo: title" {
			t.Errorf("cursor visible %v style %q blink %v title %q", st.CursorVisible, st.CursorStyle, st.CursorBlink, st.Title)
		}
		if st.Charsets[1] != "0" || !slices.Equal(st.Tabs, []int{4, 12, 30}) || st.SavedX != 19 || st.SavedY != 13 {
			t.Errorf("charsets %q tabs %v saved (%d,%d)", st.Charsets, st.Tabs, st.SavedX, st.SavedY)
		}
	}},
}

func TestRecordingsRenderSanely(t *testing.T) {
	recs, err := LoadRecordings()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range recs {
		have[r.String()] = true
	}
	for name := range recordingChecks {
		for _, size := range []string{"80x24", "120x40"} {
			if !have[name+"."+size] {
				t.Errorf("recording %s.%s is missing", name, size)
			}
		}
	}
	total := 0
	var reqs []Request
	for _, r := range recs {
		n := len(r.Bytes())
		total += n
		if n == 0 || n > 300<<10 {
			t.Errorf("%s: %d bytes, want 1..300 KiB", r, n)
		}
		reqs = append(reqs, r.Request(1000))
		// The same bytes in one write: xterm.js must not depend on the
		// chunk boundaries, or the chunked renders below prove little.
		reqs = append(reqs, Request{Rows: r.Rows, Cols: r.Cols, Scrollback: 1000, Chunks: [][]byte{r.Bytes()}})
	}
	if total > 3<<20 {
		t.Errorf("recordings total %d bytes, want under 3 MiB", total)
	}

	rd := startRenderer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	states, err := rd.RenderBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		st, whole := states[2*i], states[2*i+1]
		t.Run(r.String(), func(t *testing.T) {
			if d := Diff(whole, st); len(d) > 0 {
				t.Errorf("rendered in one write and in the recorded chunks differ:\n%s", strings.Join(d, "\n"))
			}
			if st.Rows != r.Rows || st.Cols != r.Cols {
				t.Fatalf("rendered %dx%d", st.Cols, st.Rows)
			}
			c, ok := recordingChecks[r.Name]
			if !ok {
				t.Fatalf("no checks for recording %q: add them to recordingChecks", r.Name)
			}
			if strings.TrimSpace(st.Text()) == "" {
				t.Fatal("empty screen")
			}
			if st.Buffer != c.buffer {
				t.Errorf("buffer %q at the end, want %q", st.Buffer, c.buffer)
			}
			if !strings.Contains(st.Text(), c.text) {
				t.Errorf("screen lacks %q:\n%s", c.text, st.Text())
			}
			c.check(t, st)
		})
	}
}
