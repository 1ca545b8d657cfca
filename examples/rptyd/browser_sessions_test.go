package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
)

// menuRow is one session as the menu shows it.
type menuRow struct {
	ID      string `json:"id"`
	Command string `json:"command"`
	Age     string `json:"age"`
	Clients string `json:"clients"`
	Current bool   `json:"current"`
	// Links maps each link's action (open, open-tab, view) to its URL
	// and, after a space, its target.
	Links map[string]string `json:"links"`
}

type menuState struct {
	Open    bool      `json:"open"`
	Toggle  string    `json:"toggle"`
	Loads   int       `json:"loads"`
	Note    string    `json:"note"`
	Rows    []menuRow `json:"rows"`
	Viewing bool      `json:"viewing"`
}

const readMenuJS = `(() => {
	const m = document.getElementById('sessions-menu');
	if (!m || !window.rptySessions) return null;
	const rows = [];
	for (const tr of m.querySelectorAll('tr[data-id]')) {
		rows.push({
			id: tr.dataset.id,
			command: tr.querySelector('.sessions-command').textContent,
			age: tr.querySelector('.sessions-age').textContent,
			clients: tr.querySelector('.sessions-clients').textContent,
			current: tr.classList.contains('current'),
			links: Object.fromEntries(Array.from(tr.querySelectorAll('a[data-action]'),
				(a) => [a.dataset.action, a.href + ' ' + a.target])),
		});
	}
	return {
		open: !m.hidden,
		toggle: document.getElementById('sessions-toggle').textContent,
		loads: window.rptySessions.loads,
		note: m.querySelector('.sessions-note').textContent,
		rows: rows,
		viewing: window.rptySessions.viewing,
	};
})()`

func (p *browserPage) readMenu() (*menuState, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[*menuState](readMenuJS))
}

// waitMenu polls the menu until cond holds.
func (p *browserPage) waitMenu(what string, cond func(*menuState) bool) *menuState {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last *menuState
	for {
		m, err := p.readMenu()
		if err == nil && m != nil {
			last = m
			if cond(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not within 15s; menu %+v (%v)", what, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *browserPage) click(selector string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector))); err != nil {
		p.t.Fatalf("click %s: %v", selector, err)
	}
}

func (p *browserPage) navigate(u string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		p.t.Fatalf("open %s: %v", u, err)
	}
}

func rowOf(m *menuState, id string) (menuRow, bool) {
	for _, r := range m.Rows {
		if r.ID == id {
			return r, true
		}
	}
	return menuRow{}, false
}

// TestBrowserSessionMenu drives the session menu in headless chromium: it
// lists the live sessions with their command and clients, marks the page's
// own, opens another in this tab, closes one, watches one read-only, and
// starts a new one.
func TestBrowserSessionMenu(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	p := &browserPage{t: t, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("menu-failure.png")
		}
	})
	wsCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The page's own session, and another one a WebSocket client holds.
	p.navigate(d.base + "?" + url.Values{"command": {testShell}}.Encode())
	s := p.waitFor("connect", 20*time.Second, func(s *pageState) bool { return s.State == "connected" })
	own := s.SessionID
	p.typeKeys("echo own-$((2+3))\r")
	p.waitFor("own output", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "own-5") == 1 })
	otherID := uuid.New()
	other := dialBridge(wsCtx, t, d, url.Values{"reconnect": {otherID.String()}, "command": {"bash --norc --noprofile -i"}})
	other.send(wsCtx, reconnectingpty.Request{Data: "echo other-$((3+4))\r"})
	other.waitOutput(wsCtx, "other-7")

	// The menu lists both, oldest first, with command and client count.
	p.click("#sessions-toggle")
	m := p.waitMenu("two sessions listed", func(m *menuState) bool { return m.Open && len(m.Rows) == 2 })
	if m.Rows[0].ID != own || !m.Rows[0].Current || m.Rows[0].Command != testShell || m.Rows[0].Clients != "1" {
		t.Errorf("first row %+v, want the page's own session, current, %q, 1 client", m.Rows[0], testShell)
	}
	if m.Rows[1].ID != otherID.String() || m.Rows[1].Current || m.Rows[1].Clients != "1" ||
		m.Rows[1].Command != "bash --norc --noprofile -i" || !strings.HasSuffix(m.Rows[1].Age, "s") {
		t.Errorf("second row %+v, want the other session, 1 client", m.Rows[1])
	}
	p.screenshot("menu.png")
	// Besides open here: open in a new tab, and watch read-only in one.
	links := m.Rows[1].Links
	for action, want := range map[string][]string{
		"open":     {"reconnect=" + otherID.String(), "command=" + url.QueryEscape(testShell)},
		"open-tab": {"reconnect=" + otherID.String(), " _blank"},
		"view":     {"reconnect=" + otherID.String(), "view=1", " _blank"},
	} {
		for _, w := range want {
			if !strings.Contains(links[action], w) {
				t.Errorf("link %s is %q, want it to hold %q", action, links[action], w)
			}
		}
	}
	if strings.Contains(links["open"], "view=") || strings.Contains(links["open"], "_blank") {
		t.Errorf("link open is %q, want this tab, writable", links["open"])
	}

	// Open the other session in this tab: the page attaches to it, and
	// the menu counts two clients there.
	p.click(`#sessions-menu tr[data-id="` + otherID.String() + `"] a[data-action="open"]`)
	p.waitFor("the other session in this tab", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && s.SessionID == otherID.String() && countLines(s.Lines, "other-7") == 1
	})
	p.click("#sessions-toggle")
	p.waitMenu("two clients on the other session", func(m *menuState) bool {
		r, ok := rowOf(m, otherID.String())
		return m.Open && ok && r.Current && r.Clients == "2"
	})

	// Close it from the menu: both its clients are told it ended, and the
	// list drops it.
	p.click(`#sessions-menu tr[data-id="` + otherID.String() + `"] button[data-action="close"]`)
	p.waitFor("the page sees its session end", 10*time.Second, func(s *pageState) bool { return s.State == "ended" })
	if err := other.waitClosed(wsCtx); err == nil || !strings.Contains(err.Error(), "4000") {
		t.Errorf("the other client after the close: %v, want close status 4000", err)
	}
	m = p.waitMenu("the closed session gone", func(m *menuState) bool {
		_, ok := rowOf(m, otherID.String())
		return !ok && len(m.Rows) == 1
	})
	p.screenshot("menu-after-close.png")

	// Watch the first session read-only: its output shows, typing does
	// not reach it, and the menu says so.
	p.navigate(d.base + "?" + url.Values{"reconnect": {own}, "view": {"1"}, "command": {testShell}}.Encode())
	p.waitFor("watching", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && s.SessionID == own && countLines(s.Lines, "own-5") == 1
	})
	p.typeKeys("echo typed-by-viewer\r")
	m = p.waitMenu("view only", func(m *menuState) bool { return m.Viewing && strings.Contains(m.Toggle, "view only") })
	p.click("#sessions-toggle")
	p.waitMenu("one viewing", func(m *menuState) bool {
		r, ok := rowOf(m, own)
		return m.Open && ok && r.Clients == "1 (1 viewing)"
	})
	writer := dialBridge(wsCtx, t, d, url.Values{"reconnect": {own}})
	writer.send(wsCtx, reconnectingpty.Request{Data: "echo writer-$((4+4))\r"})
	out := writer.waitOutput(wsCtx, "writer-8")
	p.waitFor("the writer's output on the viewer's screen", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "writer-8") == 1
	})
	if strings.Contains(out, "typed-by-viewer") {
		t.Errorf("the viewer's typing reached the shell:\n%s", out)
	}
	// Nor did the page send it: the server ignored no input.
	if n := readOnlyIgnoredInput(t, d); n != 0 {
		t.Errorf("the view-only page sent %v input requests, which the server dropped; want none sent", n)
	}
	p.screenshot("menu-view.png")

	// Closing the watched session ends the viewer's page too; Enter there
	// starts a fresh session that it may type into.
	p.click(`#sessions-menu tr[data-id="` + own + `"] button[data-action="close"]`)
	p.waitFor("the viewer sees the session end", 10*time.Second, func(s *pageState) bool { return s.State == "ended" })
	if err := writer.waitClosed(wsCtx); err == nil || !strings.Contains(err.Error(), "4000") {
		t.Errorf("the writer after the close: %v, want close status 4000", err)
	}
	p.typeKeys("\r")
	s = p.waitFor("a fresh session after the viewer's Enter", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && s.SessionID != own && !strings.Contains(s.URL, "view=")
	})
	fresh := s.SessionID
	p.typeKeys("echo fresh-$((5+5))\r")
	p.waitFor("typing into the fresh session", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "fresh-10") == 1 })

	// "new session" starts a fresh one in this tab. The click waits for
	// the list, as a user's would: the rows it draws push the link down, and
	// a click aimed before they arrive lands on a row.
	p.click("#sessions-toggle")
	p.waitMenu("the fresh session listed", func(m *menuState) bool {
		_, ok := rowOf(m, fresh)
		return m.Open && ok
	})
	p.click(`#sessions-menu a[data-action="new"]`)
	s = p.waitFor("a new session", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && s.SessionID != own && s.SessionID != otherID.String() && s.SessionID != fresh
	})
	if strings.Contains(s.URL, "view=") {
		t.Errorf("the new session's URL %s keeps view", s.URL)
	}
	p.click("#sessions-toggle")
	p.waitMenu("two sessions after new", func(m *menuState) bool {
		r, ok := rowOf(m, s.SessionID)
		return m.Open && len(m.Rows) == 2 && ok && r.Current
	})
}

// readOnlyIgnoredInput is the daemon's count of input requests it ignored
// from read-only connections, from /metrics.
func readOnlyIgnoredInput(t *testing.T, d *testDaemon) float64 {
	t.Helper()
	resp, err := http.Get(d.base + "metrics")
	if err != nil {
		t.Fatalf("get metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, `rptyd_read_only_ignored_total{kind="input"} `); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", l, err)
			}
			return n
		}
	}
	return 0
}
