package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// resumePart is one part of a connection's output as the page's resume
// reader (web/resume.js) splits it; adjacent data parts of one kind are
// merged, so that any split of the input gives the same parts.
type resumePart struct {
	Kind    string `json:"kind"`
	Offset  int64  `json:"offset,omitempty"`
	Len     int64  `json:"len,omitempty"`
	Data    string `json:"data,omitempty"`
	Message string `json:"message,omitempty"`
}

// readResumeJS runs the page's reader over each input's chunks (arrays of
// byte values) and returns the parts, data as Latin-1 strings.
const readResumeJS = `((inputs) => inputs.map((chunks) => {
	const r = new RptyResume.Reader();
	const out = [];
	for (const c of chunks) {
		for (const p of r.push(Uint8Array.from(c))) {
			const q = Object.assign({}, p);
			if (p.data) q.data = String.fromCharCode.apply(null, Array.from(p.data));
			const last = out[out.length - 1];
			if (q.data !== undefined && last && last.kind === q.kind && last.data !== undefined) {
				last.data += q.data;
			} else {
				out.push(q);
			}
		}
	}
	return out;
}))(%s)`

// TestBrowserResumeReader runs the page's resume reader in chromium over
// headers and plain output, each whole, split at every byte, and one byte
// per message: the parts must not depend on how the output was split.
func TestBrowserResumeReader(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	navCtx, navCancel := context.WithTimeout(ctx, 30*time.Second)
	// A page with a bad query does not connect; the reader is loaded all
	// the same.
	err := chromedp.Do(navCtx, chromedp.Navigate(d.base+"?reconnect=x"))
	navCancel()
	if err != nil {
		t.Fatalf("open the page: %v", err)
	}

	const esc = "\x1b"
	hdr := func(body string) string { return esc + "_rpty;" + body + esc + `\` }
	errPart := func(msg string) []resumePart { return []resumePart{{Kind: "error", Message: msg}} }
	for _, tc := range []struct {
		name  string
		input string
		want  []resumePart
	}{
		{"delta", hdr("v=1;mode=delta;offset=42") + "hello\r\n",
			[]resumePart{{Kind: "delta", Offset: 42}, {Kind: "output", Data: "hello\r\n"}}},
		{"delta from 0", hdr("v=1;mode=delta;offset=0") + "$ ",
			[]resumePart{{Kind: "delta"}, {Kind: "output", Data: "$ "}}},
		{"delta, nothing after yet", hdr("v=1;mode=delta;offset=9007199254740991"),
			[]resumePart{{Kind: "delta", Offset: 9007199254740991}}},
		{"reset", hdr("v=1;mode=reset;offset=7;len=9") + esc + "[H" + esc + "[2Jab" + "live" + esc + "_x",
			[]resumePart{{Kind: "reset", Offset: 7, Len: 9}, {Kind: "redraw", Data: esc + "[H" + esc + "[2Jab"}, {Kind: "output", Data: "live" + esc + "_x"}}},
		{"reset with an empty redraw", hdr("v=1;mode=reset;offset=1000;len=0") + "x",
			[]resumePart{{Kind: "reset", Offset: 1000}, {Kind: "output", Data: "x"}}},
		{"reset, redraw not complete yet", hdr("v=1;mode=reset;offset=5;len=100") + "abc",
			[]resumePart{{Kind: "reset", Offset: 5, Len: 100}, {Kind: "redraw", Data: "abc"}}},
		{"a header in the output is output", hdr("v=1;mode=delta;offset=1") + hdr("v=1;mode=delta;offset=2"),
			[]resumePart{{Kind: "delta", Offset: 1}, {Kind: "output", Data: hdr("v=1;mode=delta;offset=2")}}},
		{"keys in any order, unknown keys ignored", hdr("offset=3;mode=delta;v=1;future=yes"),
			[]resumePart{{Kind: "delta", Offset: 3}}},

		// A server without the extension: output as before.
		{"plain text", "$ ls\r\n", []resumePart{{Kind: "plain", Data: "$ ls\r\n"}}},
		{"plain escape sequence", esc + "[31mred", []resumePart{{Kind: "plain", Data: esc + "[31mred"}}},
		{"plain APC that is not ours", esc + "_rptx;v=1" + esc + `\ok`, []resumePart{{Kind: "plain", Data: esc + "_rptx;v=1" + esc + `\ok`}}},
		{"plain, part of the prefix", esc + "_rp" + "\r\n", []resumePart{{Kind: "plain", Data: esc + "_rp\r\n"}}},
		{"plain UTF-8", "é€😀", []resumePart{{Kind: "plain", Data: latin1("é€😀")}}},

		// Headers the page cannot use.
		{"version 2", hdr("v=2;mode=delta;offset=1") + "x", errPart(`bad header "rpty;v=2;mode=delta;offset=1": version "2", want 1`)},
		{"no version", hdr("mode=delta;offset=1"), errPart(`bad header "rpty;mode=delta;offset=1": version undefined, want 1`)},
		{"unknown mode", hdr("v=1;mode=skip;offset=1"), errPart(`bad header "rpty;v=1;mode=skip;offset=1": mode "skip", want delta or reset`)},
		{"no offset", hdr("v=1;mode=delta"), errPart(`bad header "rpty;v=1;mode=delta": no offset`)},
		{"negative offset", hdr("v=1;mode=delta;offset=-1"), errPart(`bad header "rpty;v=1;mode=delta;offset=-1": offset "-1" is not an unsigned integer`)},
		{"offset in exponent form", hdr("v=1;mode=delta;offset=1e3"), errPart(`bad header "rpty;v=1;mode=delta;offset=1e3": offset "1e3" is not an unsigned integer`)},
		{"offset beyond 2^53", hdr("v=1;mode=delta;offset=9007199254740993"), errPart(`bad header "rpty;v=1;mode=delta;offset=9007199254740993": offset "9007199254740993" is not an unsigned integer`)},
		{"reset without len", hdr("v=1;mode=reset;offset=1"), errPart(`bad header "rpty;v=1;mode=reset;offset=1": no len`)},
		{"repeated key", hdr("v=1;mode=delta;offset=1;offset=2"), errPart(`bad header "rpty;v=1;mode=delta;offset=1;offset=2": field offset repeated`)},
		{"field without =", hdr("v=1;mode=delta;offset=1;x"), errPart(`bad header "rpty;v=1;mode=delta;offset=1;x": field "x" is not key=value`)},
		{"control byte", esc + "_rpty;v=1\x07;mode=delta;offset=1" + esc + `\`, errPart("byte 0x07 inside the header")},
		{"ESC not ending it", esc + "_rpty;v=1" + esc + "[m", errPart("ESC inside the header")},
		{"endless header", esc + "_rpty;" + strings.Repeat("v", 300), errPart("header longer than 256 bytes")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.input)
			// Whole, split in two at every byte, one byte a message.
			splits := [][][]byte{{b}}
			for i := 1; i < len(b); i++ {
				splits = append(splits, [][]byte{b[:i], b[i:]})
			}
			var bytewise [][]byte
			for i := range b {
				bytewise = append(bytewise, b[i:i+1])
			}
			splits = append(splits, bytewise, [][]byte{{}, b, {}})
			arg, err := json.Marshal(byteArrays(splits))
			if err != nil {
				t.Fatal(err)
			}
			evalCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			got, err := chromedp.Run(evalCtx, chromedp.Evaluate[[][]resumePart](fmt.Sprintf(readResumeJS, arg)))
			cancel()
			if err != nil {
				t.Fatalf("run the reader: %v", err)
			}
			for i, parts := range got {
				if !reflect.DeepEqual(parts, tc.want) {
					t.Errorf("split %d %q:\n got %+v\nwant %+v", i, splits[i], parts, tc.want)
				}
			}
		})
	}
}

// byteArrays turns byte slices into arrays of numbers for JSON ([]byte
// would become base64).
func byteArrays(splits [][][]byte) [][][]int {
	out := make([][][]int, len(splits))
	for i, chunks := range splits {
		out[i] = make([][]int, len(chunks))
		for j, c := range chunks {
			out[i][j] = make([]int, len(c))
			for k, v := range c {
				out[i][j][k] = int(v)
			}
		}
	}
	return out
}

// latin1 is s's UTF-8 bytes as the test's JS returns them: one character
// a byte.
func latin1(s string) string {
	r := make([]rune, len(s))
	for i := range len(s) {
		r[i] = rune(s[i])
	}
	return string(r)
}

// openPage navigates the tab of ctx to u and waits until the page is
// connected.
func openPage(t *testing.T, ctx context.Context, u string) *browserPage {
	t.Helper()
	p := &browserPage{t: t, ctx: ctx}
	navCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := chromedp.Do(navCtx, chromedp.Navigate(u))
	cancel()
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	p.waitFor("connect", 20*time.Second, func(s *pageState) bool { return s.State == "connected" })
	return p
}

// openTab opens u in a new tab of the browser of ctx, closed at the end
// of the test.
func openTab(t *testing.T, ctx context.Context, u string) *browserPage {
	t.Helper()
	tabCtx, cancel := chromedp.NewContext(ctx)
	// The first action creates the tab, which lives as long as the
	// context of that action: not a timeout's.
	if err := chromedp.Do(tabCtx); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(cancel)
	return openPage(t, tabCtx, u)
}

// eval runs js in the page and decodes its result into a T.
func eval[T any](p *browserPage, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.t.Fatalf("evaluate %.60q: %v", js, err)
	}
	return v
}

// flowCounters are the page's flow-control and resume counters (window.rpty).
type flowCounters struct {
	Connects int `json:"connects"`
	Pauses   int `json:"pauses"`
	Catchups int `json:"catchups"`
	// Acks and WindowFull count the page's acknowledgements to the
	// bridge and the times its flow-control window was full.
	Acks       int     `json:"acks"`
	WindowFull int     `json:"windowFull"`
	Deltas     int     `json:"deltas"`
	Resets     int     `json:"resets"`
	Plain      int     `json:"plain"`
	Pending    int     `json:"pending"`
	Offset     *uint64 `json:"offset"`
}

func (f flowCounters) String() string {
	off := "unknown"
	if f.Offset != nil {
		off = strconv.FormatUint(*f.Offset, 10)
	}
	return fmt.Sprintf("connects %d, pauses %d, catch-ups %d, acks %d, window full %d, deltas %d, resets %d, plain %d, pending %d, offset %s",
		f.Connects, f.Pauses, f.Catchups, f.Acks, f.WindowFull, f.Deltas, f.Resets, f.Plain, f.Pending, off)
}

const flowCountersJS = `({connects: rpty.connects, pauses: rpty.pauses, catchups: rpty.catchups, acks: rpty.acks, windowFull: rpty.windowFull, deltas: rpty.deltas,
	resets: rpty.resets, plain: rpty.plain, pending: rpty.pending, offset: rpty.offset})`

// bufferJS is the page's whole buffer, scrollback and screen, as lines of
// text without trailing blanks, trailing empty lines dropped.
const bufferJS = `(() => {
	const b = rpty.term.buffer.active;
	const lines = [];
	for (let i = 0; i < b.length; i++) {
		const l = b.getLine(i);
		lines.push(l ? l.translateToString(true).trimEnd() : '');
	}
	while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
	return lines;
})()`

// TestBrowserResumeAfterCut cuts the page's WebSocket at the TCP level
// while a program is writing: the page reconnects with its offset, gets
// the bytes it missed (a delta), and ends up with the same history, line
// for line, as a fresh page that attaches afterwards. The output is larger
// than the buffered backend's replay, so a page that started over from the
// replay would lack the first lines.
func TestBrowserResumeAfterCut(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	p := openPage(t, ctx, d.base+"?"+url.Values{"command": {testShell}}.Encode())
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	const lines = 1600 // of 61 bytes: 97 KB, more than the 64 KiB replay
	p.typeKeys("PS1='prompt> '\r")
	// Bursts of 100 lines (printf is a builtin), a pause after each.
	p.typeKeys(fmt.Sprintf(`for i in $(seq 1 %d); do printf 'line-%%05d %%s\n' $i %s; [ $((i %% 100)) = 0 ] && sleep 0.25; done; echo done-$((6*7))`+"\r",
		lines, strings.Repeat("x", 50)))
	p.waitFor("output under way", 30*time.Second, func(s *pageState) bool {
		return slices.ContainsFunc(s.Lines, func(l string) bool { return strings.HasPrefix(l, "line-00300 ") })
	})
	before := eval[flowCounters](p, flowCountersJS)
	if n := d.cut(); n == 0 {
		t.Fatal("no WebSocket connection to cut")
	}
	s := p.waitFor("the page reconnected and the output ended", 60*time.Second, func(s *pageState) bool {
		return s.Connects > before.Connects && countLines(s.Lines, "done-42") == 1
	})
	// The shell's prompt follows done-42; wait for the page to have it.
	p.waitFor("the prompt", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "prompt>") == 1
	})
	after := eval[flowCounters](p, flowCountersJS)
	t.Logf("page before the cut: %v; after: %v", before, after)
	if after.Deltas <= before.Deltas || after.Resets != before.Resets || after.Plain != 0 {
		t.Errorf("the reconnect was not a delta: before %v; after %v", before, after)
	}
	if before.Offset == nil || after.Offset == nil || *after.Offset <= *before.Offset {
		t.Errorf("offset did not advance: before %v, after %v", before.Offset, after.Offset)
	}
	got := eval[[]string](p, bufferJS)
	seen := map[string]int{}
	for _, l := range got {
		if strings.HasPrefix(l, "line-") {
			seen[l]++
		}
	}
	for i := 1; i <= lines; i++ {
		l := fmt.Sprintf("line-%05d %s", i, strings.Repeat("x", 50))
		if seen[l] != 1 {
			t.Errorf("%.10s is in the page's buffer %d times, want once", l, seen[l])
		}
	}

	// A fresh page of the same size attaching now gets the whole history
	// (the session's first bytes are still held) and shows the same.
	fresh := openTab(t, ctx, d.base+"?"+url.Values{"reconnect": {s.SessionID},
		"height": {strconv.Itoa(s.Rows)}, "width": {strconv.Itoa(s.Cols)}}.Encode())
	fresh.waitFor("the history in the fresh page", 20*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "done-42") == 1 && countLines(s.Lines, "prompt>") == 1
	})
	want := eval[[]string](fresh, bufferJS)
	if !slices.Equal(got, want) {
		t.Errorf("the page's buffer (%d lines) differs from a fresh attach's (%d lines):\n%s", len(got), len(want), lineDiff(got, want))
	}
	p.screenshot("resumed.png")
}

// TestBrowserOldServer runs the page against a server that ignores its
// resume request, as one without the extension does: no header comes, and
// the page behaves as it did before the extension, clearing the terminal
// for the replay on every reconnect so that nothing shows twice.
func TestBrowserOldServer(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	d.oldBridge.Store(true)
	p := openPage(t, ctx, d.base+"?"+url.Values{"command": {testShell}}.Encode())
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	p.typeKeys("echo hello-$((1+1))\r")
	p.waitFor("output", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "hello-2") == 1 })
	before := eval[flowCounters](p, flowCountersJS)
	if n := d.cut(); n == 0 {
		t.Fatal("no WebSocket connection to cut")
	}
	p.waitFor("reconnect after a cut", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && s.Connects > before.Connects
	})
	p.typeKeys("echo again-$((2+2))\r")
	s := p.waitFor("typing after the reconnect", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "again-4") == 1
	})
	if n := countLines(s.Lines, "hello-2"); n != 1 {
		t.Errorf("hello-2 on screen %d times, want once:\n%s", n, screenText(s.Lines))
	}
	fc := eval[flowCounters](p, flowCountersJS)
	if fc.Plain < 2 || fc.Deltas != 0 || fc.Resets != 0 || fc.Offset != nil {
		t.Errorf("want two connections without a header and no offset: %v", fc)
	}
}
