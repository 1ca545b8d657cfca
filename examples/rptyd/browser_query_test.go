package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPageQuery opens the page with queries of its own, good and
// bad: a bad one is shown as an error and nothing connects; an empty
// reconnect starts a new session; a size in the URL fixes the terminal's.
func TestBrowserPageQuery(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	p := &browserPage{t: t, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	navigate := func(query string) {
		t.Helper()
		navCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(navCtx, chromedp.Navigate(d.base+"?"+query)); err != nil {
			t.Fatalf("open ?%s: %v", query, err)
		}
	}
	for _, tc := range []struct{ query, want string }{
		{"reconnect=not-a-uuid", `error: invalid reconnect parameter "not-a-uuid": want a non-nil session UUID`},
		{"reconnect=00000000-0000-0000-0000-000000000000", "error: invalid reconnect parameter"},
		{"height=24", "error: height and width go together"},
		{"height=0&width=80", `error: invalid height parameter "0": want a whole number from 1 to 1000`},
		{"height=24&width=1001", `error: invalid width parameter "1001"`},
		{"height=24&width=8x", `error: invalid width parameter "8x"`},
		{"height=%2B24&width=80", `error: invalid height parameter "+24"`},
	} {
		navigate(tc.query)
		s := p.waitFor("the error for ?"+tc.query, 10*time.Second, func(s *pageState) bool { return s.State == "error" })
		if !strings.HasPrefix(s.Status, tc.want) {
			t.Errorf("?%s: status %q, want it to start with %q", tc.query, s.Status, tc.want)
		}
		// Nothing was connected, and no session made up.
		time.Sleep(200 * time.Millisecond)
		if n := d.srv.ConnCount(); n != 0 || s.Connects != 0 || s.SessionID != "" {
			t.Errorf("?%s: %d connections to the server, %d connects, session %q; want none", tc.query, n, s.Connects, s.SessionID)
		}
	}

	navigate("reconnect=&command=" + url.QueryEscape(testShell))
	s := p.waitFor("a new session for an empty reconnect", 20*time.Second, func(s *pageState) bool { return s.State == "connected" })
	if !strings.Contains(s.URL, "reconnect="+s.SessionID) {
		t.Errorf("page URL %s does not name the new session %s", s.URL, s.SessionID)
	}

	navigate("height=20&width=70&command=" + url.QueryEscape(testShell))
	s = p.waitFor("a fixed size", 20*time.Second, func(s *pageState) bool { return s.State == "connected" })
	if s.Rows != 20 || s.Cols != 70 {
		t.Errorf("terminal %dx%d, want 20x70 from the URL", s.Rows, s.Cols)
	}
	p.typeKeys("stty size\r")
	p.waitFor("the PTY at that size", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "20 70") == 1 })
	p.screenshot("fixed-size.png")

	// Unicode 11 widths, as internal/vt counts them: U+1F970, new in
	// Unicode 11, takes two cells (one with xterm.js's default table).
	evalCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	width, err := chromedp.Run(evalCtx, chromedp.Evaluate[[]any](`new Promise((resolve) => {
		const term = rpty.term;
		term.write('\r\n', () => {
			const x0 = term.buffer.active.cursorX;
			term.write('\u{1F970}', () => resolve([term.unicode.activeVersion, term.buffer.active.cursorX - x0]));
		});
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("measure a character's width: %v", err)
	}
	if fmt.Sprint(width) != "[11 2]" {
		t.Errorf("unicode version and width of U+1F970: %v, want [11 2]", width)
	}
}
