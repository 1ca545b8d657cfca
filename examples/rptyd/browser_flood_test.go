package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// visibleScreen is the page's viewport as lines of text, trailing spaces
// trimmed.
const visibleScreenJS = `(() => {
	const b = rpty.term.buffer.active;
	const lines = [];
	for (let y = 0; y < rpty.term.rows; y++) {
		const l = b.getLine(b.viewportY + y);
		lines.push(l ? l.translateToString(true) : '');
	}
	return lines;
})()`

// watchEchoJS instruments the page: it notes when each key reaches the
// terminal's onData (typed), and when a chunk holding that character was
// first parsed by xterm.js after that (echoed, from the write callback,
// so the character has been on the terminal's screen). Times are the
// page's performance.now() in milliseconds.
const watchEchoJS = `(() => {
	const w = { typed: {}, echoed: {} };
	window.echoWatch = w;
	const term = rpty.term;
	term.onData((d) => { if (!(d in w.typed)) w.typed[d] = performance.now(); });
	const write = term.write.bind(term);
	term.write = (data, cb) => {
		const hits = [];
		for (const k in w.typed) {
			if (k in w.echoed || k.length !== 1) continue;
			const found = typeof data === 'string' ? data.includes(k) : data.indexOf(k.charCodeAt(0)) >= 0;
			if (found) hits.push(k);
		}
		return write(data, () => {
			const now = performance.now();
			for (const k of hits) if (!(k in w.echoed)) w.echoed[k] = now;
			if (cb) cb();
		});
	};
	return true;
})()`

type echoTimes struct {
	Typed  map[string]float64 `json:"typed"`
	Echoed map[string]float64 `json:"echoed"`
}

// TestBrowserFlood runs yes in the web terminal: the page must stay
// usable. The bridge's flow-control window fills again and again, which
// paces yes to what xterm.js shows, so the page never falls behind far
// enough to drop its connection; typed keys are echoed on screen within
// 200 ms (p95 over 20 keys, as issue 10 asks); Ctrl-C stops the flood on
// screen within 1 s (not checked with the race detector, which slows the
// server several times); and the final screen equals what a fresh attach
// shows.
func TestBrowserFlood(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	p := openPage(t, ctx, d.base+"?"+url.Values{"command": {testShell}}.Encode())
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	p.typeKeys("PS1='prompt> '\r")
	p.waitFor("the prompt", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "prompt>") >= 1
	})
	eval[bool](p, watchEchoJS)

	p.typeKeys("yes\r")
	// The flood outruns xterm.js: the bridge's window fills, again and
	// again, and the program waits for the page.
	p.waitFor("the flow-control window filling", 60*time.Second, func(*pageState) bool {
		return eval[flowCounters](p, flowCountersJS).WindowFull >= 3
	})

	// Neither y nor any character of the command line or prompt, so that
	// only the echo can show them.
	const keys = "cdfgijklnuvwxzCDFGIJ"
	const missed = time.Hour
	var lat []time.Duration
	for i, k := range keys {
		p.typeKeys(string(k))
		deadline := time.Now().Add(2 * time.Second)
		for {
			e := eval[echoTimes](p, "window.echoWatch")
			if at, ok := e.Echoed[string(k)]; ok {
				lat = append(lat, time.Duration((at-e.Typed[string(k)])*float64(time.Millisecond)))
				break
			}
			if time.Now().After(deadline) {
				lat = append(lat, missed)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(30+17*i%70) * time.Millisecond)
	}
	slices.Sort(lat)
	fc := eval[flowCounters](p, flowCountersJS)
	p95 := lat[len(lat)*95/100-1]
	t.Logf("echo on screen: latencies %v, p95 %v; page: %v", lat, p95, fc)
	if p95 > 200*time.Millisecond {
		t.Errorf("a typed key reached the screen after %v at p95 (missed keys count as an hour), want at most 200ms", p95)
	}
	if fc.Connects != 1 || fc.Catchups != 0 || fc.Pauses != 0 {
		t.Errorf("the page fell behind on its own (pauses or reconnects) though the bridge paces the flood: %v", fc)
	}
	p.screenshot("flood.png")

	// Ctrl-C: the flood ends on screen (the prompt on the cursor's row)
	// within 1 s of the key.
	eval[bool](p, `(() => {
		const term = rpty.term;
		window.stopWatch = { typed: 0, stopped: 0 };
		term.onData((d) => { if (d === '\x03') window.stopWatch.typed = performance.now(); });
		const check = () => {
			const w = window.stopWatch;
			const b = term.buffer.active;
			const line = b.getLine(b.baseY + b.cursorY);
			if (w.typed && line && line.translateToString(true).trimEnd() === 'prompt>') {
				w.stopped = performance.now();
				return;
			}
			setTimeout(check, 5);
		};
		check();
		return true;
	})()`)
	p.pressCtrl('c')
	type stopTimes struct {
		Typed   float64 `json:"typed"`
		Stopped float64 `json:"stopped"`
	}
	var stop stopTimes
	deadline := time.Now().Add(10 * time.Second)
	for {
		stop = eval[stopTimes](p, "window.stopWatch")
		if stop.Stopped != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if stop.Stopped == 0 {
		t.Fatalf("the flood did not stop on screen within 10 s of Ctrl-C; page: %v, draining %v, %v bytes set aside", eval[flowCounters](p, flowCountersJS),
			eval[bool](p, "rpty.draining"), eval[int](p, "rpty.stashed"))
	}
	stopAfter := time.Duration((stop.Stopped - stop.Typed) * float64(time.Millisecond))
	t.Logf("Ctrl-C to the prompt on screen: %v", stopAfter)
	switch {
	case stopAfter <= time.Second:
	case raceBuild:
		t.Logf("Ctrl-C stopped the flood on screen after %v: over 1 s, not checked with the race detector on", stopAfter)
	default:
		t.Errorf("Ctrl-C stopped the flood on screen after %v, want at most 1s", stopAfter)
	}

	// Once all is parsed, the screen is what a fresh attach shows.
	p.waitFor("the page idle", 10*time.Second, func(*pageState) bool {
		return eval[flowCounters](p, flowCountersJS).Pending == 0
	})
	time.Sleep(300 * time.Millisecond)
	got := eval[[]string](p, visibleScreenJS)
	s := p.waitFor("the session ID", time.Second, func(*pageState) bool { return true })
	// The same size as the page, which a new tab's window need not have.
	fresh := openTab(t, ctx, d.base+"?"+url.Values{"reconnect": {s.SessionID},
		"height": {strconv.Itoa(s.Rows)}, "width": {strconv.Itoa(s.Cols)}}.Encode())
	fresh.waitFor("the prompt in the fresh page", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "prompt>") >= 1
	})
	time.Sleep(300 * time.Millisecond)
	want := eval[[]string](fresh, visibleScreenJS)
	if !slices.Equal(got, want) {
		t.Errorf("final screen (%d rows) differs from a fresh attach's (%d rows):\n%s", len(got), len(want), lineDiff(got, want))
	}
	p.screenshot("flood-stopped.png")
	fresh.screenshot("flood-fresh.png")
}

// pressCtrl types Ctrl and the letter c (a-z) together, as a keyboard
// does; xterm.js turns it into the control character.
func (p *browserPage) pressCtrl(c byte) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(".xterm-helper-textarea"))); err != nil {
		p.t.Fatalf("focus the terminal: %v", err)
	}
	upper := string(rune(c - 'a' + 'A'))
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
		ev := input.DispatchKeyEventParams{
			Type:                  typ,
			Modifiers:             2, // Ctrl
			Key:                   string(rune(c)),
			Code:                  "Key" + upper,
			WindowsVirtualKeyCode: int64(upper[0]),
			NativeVirtualKeyCode:  int64(upper[0]),
		}
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, ev); err != nil {
			p.t.Fatalf("press Ctrl-%c: %v", c, err)
		}
	}
}

// lineDiff shows the rows where got and want differ.
func lineDiff(got, want []string) string {
	var b strings.Builder
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			fmt.Fprintf(&b, "\trow %d: %q, fresh %q\n", i, g, w)
		}
	}
	return b.String()
}

// TestBrowserBurst has far more output than the bridge's flow-control
// window arrive while the page is busy: the bridge holds the rest back
// until the page has rendered what it sent, so the page catches up on the
// same connection, without a reconnect or a pause of its own, and shows
// every line.
func TestBrowserBurst(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	p := openPage(t, ctx, d.base+"?"+url.Values{"command": {testShell}}.Encode())
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	p.typeKeys("PS1='prompt> '\r")
	p.waitFor("the prompt", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "prompt>") == 1 })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("page: %v", eval[any](p, `({fc: `+flowCountersJS+`, link: `+linkCountersJS+`, draining: rpty.draining, stashed: rpty.stashed})`))
		}
	})
	// 25,000 lines, 164 KB with the PTY's CRs: more than twice the window.
	// The page's main thread is held while the burst arrives, so that it
	// all lands at once, however fast this machine parses; the hold
	// outlasts the shell's start on a loaded machine by seconds. Should the
	// burst still come after the hold (the window never full), it is
	// repeated: what is checked is the page behind a full window.
	var fc flowCounters
	for attempt := 1; attempt <= 3 && fc.WindowFull == 0; attempt++ {
		end := fmt.Sprintf("burst-%d", 40+attempt)
		p.typeKeys(fmt.Sprintf("sleep 0.5; seq 1 25000; echo burst-$((%d+%d))\r", 40, attempt))
		eval[bool](p, `(() => { const end = performance.now() + 4000; while (performance.now() < end) {} return true; })()`)
		p.waitFor("the end of the burst", 60*time.Second, func(s *pageState) bool {
			i := slices.IndexFunc(s.Lines, func(l string) bool { return strings.TrimSpace(l) == end })
			return i >= 0 && i+1 < len(s.Lines) && strings.TrimSpace(s.Lines[i+1]) == "prompt>"
		})
		fc = eval[flowCounters](p, flowCountersJS)
		t.Logf("burst %d: page: %v", attempt, fc)
	}
	if fc.WindowFull == 0 || fc.Pauses != 0 || fc.Connects != 1 || fc.Catchups != 0 {
		t.Errorf("want the window full at least once, and no pause or reconnect: %v", fc)
	}
	// The scrollback keeps the last rows of the burst: consecutive
	// numbers up to 25000, none missing or repeated.
	got := eval[[]string](p, bufferJS)
	var nums []int
	for _, l := range got {
		if v, err := strconv.Atoi(l); err == nil {
			nums = append(nums, v)
		}
	}
	if len(nums) < 1000 || nums[len(nums)-1] != 25000 {
		t.Fatalf("%d numbers on the page, the last %v; want the burst's last thousands", len(nums), nums[max(0, len(nums)-3):])
	}
	for i := 1; i < len(nums); i++ {
		if nums[i] != nums[i-1]+1 {
			t.Fatalf("the page shows %d after %d", nums[i], nums[i-1])
		}
	}
}
