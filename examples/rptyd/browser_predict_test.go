package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// predictState is what the test reads of predict.js and the cursor.
type predictState struct {
	Active bool `json:"active"`
	Drawn  int  `json:"drawn"` // spans in the layer over the terminal
	Shown  []struct {
		Y, X int
		Ch   string
	} `json:"shown"`
	Predicted int     `json:"predicted"`
	Confirmed int     `json:"confirmed"`
	Wrong     int     `json:"wrong"`
	Stale     int     `json:"stale"`
	RTT       float64 `json:"rtt"`
	CursorY   int     `json:"cursorY"`
	CursorX   int     `json:"cursorX"`
	Alt       bool    `json:"alt"`
}

const predictStateJS = `(() => {
	const r = window.rpty, p = r.predict, b = r.term.buffer.active;
	return {active: p.active(), drawn: document.querySelectorAll('.rpty-predict span').length, shown: p.shown(),
		predicted: p.stats.predicted, confirmed: p.stats.confirmed, wrong: p.stats.wrong, stale: p.stats.stale,
		rtt: r.pathRtt, cursorY: b.cursorY, cursorX: b.cursorX, alt: b.type !== 'normal'};
})()`

// latencyJS installs, once per page, a stopwatch for one key at a time:
// expect(y, x, ch) names the cell and glyph the next key should show; the
// key's keydown starts it (before xterm.js sees it) and the first
// moment that glyph is on screen at that cell, drawn by the prediction
// layer or in the terminal's own buffer, stops it. It is checked right
// after the key is handled, whenever the layer changes and whenever
// xterm.js has parsed output, so the figure is the page's own, without
// the test's round trips to the browser.
const latencyJS = `(() => {
	if (window.__lat) return true;
	const r = window.rpty, lat = window.__lat = {want: null, t0: 0, t1: 0};
	const glyphAt = (w) => {
		if (r.predict.shown().some((s) => s.y === w.y && s.x === w.x && s.ch === w.ch)) return true;
		const b = r.term.buffer.active, l = b.getLine(b.baseY + w.y), c = l && l.getCell(w.x);
		return !!c && c.getChars() === w.ch;
	};
	const check = () => { if (lat.want && lat.t0 && !lat.t1 && glyphAt(lat.want)) lat.t1 = performance.now(); };
	lat.expect = (y, x, ch) => { lat.want = {y: y, x: x, ch: ch}; lat.t0 = 0; lat.t1 = 0; };
	// The window's capture listener runs before any other of the key's.
	window.addEventListener('keydown', () => {
		if (lat.want && !lat.t0) { lat.t0 = performance.now(); setTimeout(check, 0); }
	}, true);
	new MutationObserver(check).observe(document.querySelector('.rpty-predict'), {childList: true});
	r.term.onWriteParsed(check);
	return true;
})()`

// keystrokeLatencies types text one key at a time at the prompt and times
// each, in the page, from its keydown to its glyph on screen.
func keystrokeLatencies(t *testing.T, p *browserPage, text string) []time.Duration {
	t.Helper()
	eval[bool](p, latencyJS)
	st := eval[predictState](p, predictStateJS)
	y, x := st.CursorY, st.CursorX
	var lat []time.Duration
	for i, r := range text {
		eval[bool](p, fmt.Sprintf("(window.__lat.expect(%d, %d, %q), true)", y, x+i, string(r)))
		start := time.Now()
		p.typeKeys(string(r))
		for {
			ms := eval[float64](p, "window.__lat.t1 ? window.__lat.t1 - window.__lat.t0 : -1")
			if ms >= 0 {
				lat = append(lat, time.Duration(ms*float64(time.Millisecond)))
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%q (key %d) not on screen at row %d, column %d after 5 s", r, i, y, x+i)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return lat
}

func pct(lat []time.Duration, q float64) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// watchNothingDrawn polls, while act runs, that the prediction layer
// draws nothing, and fails at the first glyph it draws.
func watchNothingDrawn(t *testing.T, p *browserPage, what string, act func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var seen []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			st, err := chromedp.Run(p.ctx, chromedp.Evaluate[predictState](predictStateJS))
			if err == nil && (st.Drawn > 0 || len(st.Shown) > 0) {
				seen = append(seen, fmt.Sprintf("%d spans, %v", st.Drawn, st.Shown))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	act()
	time.Sleep(500 * time.Millisecond) // the echo, or its absence, has arrived
	cancel()
	wg.Wait()
	if len(seen) > 0 {
		t.Errorf("%s: the prediction layer drew %s", what, seen[0])
	}
}

// TestBrowserPredictiveEcho runs the page through a link with a 150 ms
// round trip: typed keys show at once with prediction and a round trip
// late without; what the program does not echo (a password, stty -echo,
// vim's alternate screen, readline's history search) is never drawn; and
// the terminal ends as the program drew it, the layer empty. On loopback
// nothing is predicted.
func TestBrowserPredictiveEcho(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	base, err := url.Parse(d.base)
	if err != nil {
		t.Fatal(err)
	}
	const rtt = 150 * time.Millisecond
	proxy := rptytest.NewDelayProxy(t, base.Host, rtt)
	far := "http://" + proxy.Addr() + "/"
	command := testShell
	const typed = "echo predicted-echo-arrives-exactly-once-here"

	measure := func(p *browserPage, label string) []time.Duration {
		setPrompt(t, p)
		waitRTT(t, p)
		lat := keystrokeLatencies(t, p, typed)
		p.typeKeys("\r")
		p.waitFor("the command's output", 10*time.Second, func(s *pageState) bool {
			return countLines(s.Lines, "predicted-echo-arrives-exactly-once-here") == 1
		})
		time.Sleep(3 * rtt)
		st := eval[predictState](p, predictStateJS)
		if st.Drawn != 0 || len(st.Shown) != 0 {
			t.Errorf("%s: the layer still draws %d glyphs after the command ran: %v", label, st.Drawn, st.Shown)
		}
		lines := eval[[]string](p, bufferJS)
		if n := countLines(lines, "$ "+typed); n != 1 {
			t.Errorf("%s: the command line is on screen %d times, want once as the shell echoed it:\n%s", label, n, strings.Join(lines, "\n"))
		}
		t.Logf("%s: keystroke to glyph p50 %v, p95 %v, max %v over %d keys; predicted %d, confirmed %d, wrong %d, stale %d, rtt %.0f ms",
			label, pct(lat, 0.5).Round(100*time.Microsecond), pct(lat, 0.95).Round(100*time.Microsecond), pct(lat, 1).Round(100*time.Microsecond),
			len(lat), st.Predicted, st.Confirmed, st.Wrong, st.Stale, st.RTT)
		return lat
	}

	// With prediction (the default: on above 30 ms of round trip).
	p := openPage(t, ctx, far+"?"+url.Values{"command": {command}}.Encode())
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("predict-failure.png")
		}
	})
	withLat := measure(p, "150 ms round trip, predicting")
	if got := pct(withLat, 0.95); got > 20*time.Millisecond {
		t.Errorf("with prediction a key reached the screen after %v at p95, want under 20 ms", got)
	}
	p.screenshot("predict-done.png")
	// What a user sees while keys are in flight: the guesses underlined.
	p.typeKeys("#")
	time.Sleep(2 * rtt)
	p.typeKeys(" typed-ahead")
	p.screenshot("predict-in-flight.png")
	p.pressCtrl('u')
	time.Sleep(2 * rtt)

	// Mispredictions: none may ever be drawn.
	// The password is typed once the prompt's own line is there, as a
	// user would: the echo of the command that asks for it holds the same
	// words and arrives first (keys typed while that echo is still in
	// flight are type-ahead, docs/prediction.md).
	p.typeKeys("read -s -p 'Password: ' pw; echo; echo got-${#pw}\r")
	p.waitFor("the password prompt", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "Password:") == 1 })
	watchNothingDrawn(t, p, "a read -s password prompt", func() {
		for _, r := range "hunter2secret" {
			p.typeKeys(string(r))
			time.Sleep(40 * time.Millisecond)
		}
	})
	p.typeKeys("\r")
	p.waitFor("the password read", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "got-13") == 1 })

	p.typeKeys("stty -echo; cat; stty echo\r")
	time.Sleep(3 * rtt)
	watchNothingDrawn(t, p, "cat with echo off", func() {
		for _, r := range "no-echo-here" {
			p.typeKeys(string(r))
			time.Sleep(40 * time.Millisecond)
		}
	})
	p.typeKeys("\r")
	p.waitFor("cat's copy of the line", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "no-echo-here") == 1 })
	p.pressCtrl('d') // EOF: cat ends, echo comes back
	time.Sleep(3 * rtt)

	p.typeKeys("vim.tiny -u NONE -N\r")
	p.waitFor("vim on the alternate screen", 10*time.Second, func(s *pageState) bool { return eval[predictState](p, predictStateJS).Alt })
	time.Sleep(3 * rtt)
	watchNothingDrawn(t, p, "vim in insert mode", func() {
		p.typeKeys("i")
		for _, r := range "typed-in-vim" {
			p.typeKeys(string(r))
			time.Sleep(40 * time.Millisecond)
		}
	})
	p.typeKeys("\x1b:q!\r")
	p.waitFor("back from vim", 10*time.Second, func(s *pageState) bool { return !eval[predictState](p, predictStateJS).Alt })
	time.Sleep(3 * rtt)

	// readline's history search draws what is typed in its own prompt:
	// whatever the layer does meanwhile, it must end empty, the screen
	// as bash drew it.
	p.pressCtrl('r')
	p.typeKeys("predicted")
	time.Sleep(6 * rtt)
	p.pressCtrl('g') // leaves the search
	time.Sleep(1500 * time.Millisecond)
	if st := eval[predictState](p, predictStateJS); st.Drawn != 0 || len(st.Shown) != 0 {
		t.Errorf("after readline's history search the layer still draws %v", st.Shown)
	}

	// Without prediction the same link shows each key a round trip late.
	q := openTab(t, ctx, far+"?"+url.Values{"command": {command}, "predict": {"off"}}.Encode())
	withoutLat := measure(q, "150 ms round trip, not predicting")
	if got := pct(withoutLat, 0.5); got < rtt*3/4 {
		t.Errorf("without prediction a key reached the screen after %v at p50, less than the round trip: the link is not slow", got)
	}

	// On loopback (below the threshold) nothing is predicted.
	l := openTab(t, ctx, d.base+"?"+url.Values{"command": {command}}.Encode())
	setPrompt(t, l)
	waitRTT(t, l)
	watchNothingDrawn(t, l, "loopback", func() { l.typeKeys("echo on-loopback\r") })
	l.waitFor("the loopback command", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "on-loopback") == 1 })
	if st := eval[predictState](l, predictStateJS); st.Predicted != 0 || st.Active {
		t.Errorf("on loopback (round trip %.1f ms) the page predicted %d keys (active %v)", st.RTT, st.Predicted, st.Active)
	}
}

// setPrompt waits for the shell and makes its prompt "$ ".
func setPrompt(t *testing.T, p *browserPage) {
	t.Helper()
	p.waitFor("the shell", 20*time.Second, func(s *pageState) bool { return strings.Contains(screenText(s.Lines), "# ") })
	p.typeKeys("PS1='$ '\r")
	p.waitFor("the prompt", 10*time.Second, func(s *pageState) bool {
		st := eval[predictState](p, predictStateJS)
		return len(s.Lines) > st.CursorY && strings.TrimSpace(s.Lines[len(s.Lines)-s.Rows+st.CursorY]) == "$"
	})
}

// waitRTT waits for the page's first measured round trip.
func waitRTT(t *testing.T, p *browserPage) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for eval[predictState](p, predictStateJS).RTT <= 0 {
		if time.Now().After(deadline) {
			t.Fatal("the page measured no round trip within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserPredictionLatencyTable prints keystroke-to-glyph latency with
// and without prediction over links of several round trips, for the
// report: RPTY_PREDICT_RTTS=0,50,150,300 (milliseconds; it is skipped
// without). Each round trip gets its own delaying proxy and two tabs, one
// predicting (?predict=on, so that 0 ms predicts too) and one not
// (?predict=off: what every terminal without prediction, ssh included,
// shows).
func TestBrowserPredictionLatencyTable(t *testing.T) {
	spec := os.Getenv("RPTY_PREDICT_RTTS")
	if spec == "" {
		t.Skip("set RPTY_PREDICT_RTTS=0,50,150,300 to print the latency table")
	}
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	base, err := url.Parse(d.base)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, f := range strings.Split(spec, ",") {
		ms, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("RPTY_PREDICT_RTTS: %v", err)
		}
		rtt := time.Duration(ms) * time.Millisecond
		target := d.base
		if rtt > 0 {
			target = "http://" + rptytest.NewDelayProxy(t, base.Host, rtt).Addr() + "/"
		}
		row := fmt.Sprintf("| %d ms |", ms)
		for _, mode := range []string{"on", "off"} {
			p := openTab(t, ctx, target+"?"+url.Values{"command": {testShell}, "predict": {mode}}.Encode())
			setPrompt(t, p)
			waitRTT(t, p)
			lat := keystrokeLatencies(t, p, "echo a-line-typed-at-the-prompt-for-the-table")
			row += fmt.Sprintf(" %.1f / %.1f |", ms1(pct(lat, 0.5)), ms1(pct(lat, 0.95)))
			p.typeKeys("\r")
		}
		rows = append(rows, row)
	}
	t.Logf("keystroke to glyph (page, to the DOM), p50 / p95 ms over 44 keys:\n| round trip | predicting | not predicting |\n| --- | --- | --- |\n%s", strings.Join(rows, "\n"))
}

func ms1(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
