package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// pageState is what the test reads of the page: the hooks app.js puts on
// window.rpty, and the terminal's buffer as lines of text (xterm's model,
// not the DOM, which renders only what is visible).
type pageState struct {
	State     string   `json:"state"`
	Status    string   `json:"status"`
	Connects  int      `json:"connects"`
	SessionID string   `json:"sessionID"`
	URL       string   `json:"url"`
	Rows      int      `json:"rows"`
	Cols      int      `json:"cols"`
	Lines     []string `json:"lines"`
}

const readPageJS = `(() => {
	const r = window.rpty;
	if (!r) return null;
	const b = r.term.buffer.active;
	const lines = [];
	for (let i = 0; i < b.length; i++) {
		const l = b.getLine(i);
		lines.push(l ? l.translateToString(true) : '');
	}
	return {
		state: r.state,
		status: document.getElementById('status').textContent,
		connects: r.connects,
		sessionID: r.sessionID,
		url: location.href,
		rows: r.term.rows,
		cols: r.term.cols,
		lines: lines,
	};
})()`

// browserPage drives one headless chromium tab showing the web terminal.
type browserPage struct {
	t   *testing.T
	ctx context.Context
}

func (p *browserPage) read() (*pageState, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[*pageState](readPageJS))
}

// waitFor polls the page until cond holds, failing the test with what the
// page showed last when it does not within timeout.
func (p *browserPage) waitFor(what string, timeout time.Duration, cond func(*pageState) bool) *pageState {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *pageState
	var lastErr error
	for {
		s, err := p.read()
		if err == nil && s != nil {
			last = s
			if cond(s) {
				return s
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			if last == nil {
				p.t.Fatalf("%s: page never readable: %v", what, lastErr)
			}
			p.t.Fatalf("%s: not within %s; page state %q (%q), %d connects, %dx%d, screen:\n%s",
				what, timeout, last.State, last.Status, last.Connects, last.Rows, last.Cols, screenText(last.Lines))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// typeKeys types s into the focused terminal the way a keyboard does: per
// character one keyDown that carries the text, then a keyUp. chromedp's
// SendKeys sends a separate "char" event after the keyDown, which the page
// cannot cancel: xterm.js handles the keyDown and cancels it, as browsers
// then drop the keypress, and would see every character twice.
func (p *browserPage) typeKeys(s string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(".xterm-helper-textarea"))); err != nil {
		p.t.Fatalf("focus the terminal: %v", err)
	}
	for _, r := range s {
		var down, up *input.DispatchKeyEventParams
		text := ""
		for _, ev := range kb.Encode(r) {
			switch ev.Type {
			case kb.KeyDown:
				down = ev
			case kb.KeyUp:
				up = ev
			case kb.KeyChar:
				text = ev.Text
			}
		}
		if down == nil || up == nil {
			p.t.Fatalf("type %q: no key events for %q", s, r)
		}
		down.Text, down.UnmodifiedText = text, text
		for _, ev := range []*input.DispatchKeyEventParams{down, up} {
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, *ev); err != nil {
				p.t.Fatalf("type %q: %v", s, err)
			}
		}
	}
}

// screenshot saves the page as a PNG in the test's artifact directory
// (kept with go test -artifacts, otherwise a temporary directory).
func (p *browserPage) screenshot(name string) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(p.t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}

func screenText(lines []string) string {
	// Trailing empty rows say nothing.
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return "\t| " + strings.Join(lines, "\n\t| ")
}

func countLines(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if strings.TrimSpace(l) == want {
			n++
		}
	}
	return n
}

// startBrowser starts headless chromium with a fresh profile and returns a
// tab context. The cleanup closes the browser, waits for chromedp's
// goroutines, and checks that no chromium process of this profile is left.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed: apt-get install chromium")
	}
	return startBrowserAt(t, path)
}

// startBrowserAt is startBrowser with the program that runs chromium, for
// a wrapper that starts it elsewhere (in a network namespace).
func startBrowserAt(t *testing.T, path string) context.Context {
	t.Helper()
	profile := filepath.Join(t.TempDir(), "profile")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// The machine has no internet: keep chromium from trying.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1000, 640),
	}
	// RPTY_NETLOG=path writes chromium's net log there (socket pools, TCP
	// attempts, with everything captured), for looking into the page's
	// network behaviour.
	if netlog := os.Getenv("RPTY_NETLOG"); netlog != "" {
		opts = append(opts, chromedp.Flag("log-net-log", netlog), chromedp.Flag("net-log-capture-mode", "Everything"))
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)

	// Collect the console, to fail on page errors and to show it when
	// something else fails. The collector ends with the tab's context.
	messages := chromedp.Console(ctx)
	var (
		consoleMu sync.Mutex
		console   []chromedp.ConsoleMessage
	)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for m, err := range messages {
			if err != nil {
				return
			}
			consoleMu.Lock()
			console = append(console, m)
			consoleMu.Unlock()
		}
	}()

	t.Cleanup(func() {
		// Close the browser gracefully, then stop the allocator, which
		// waits for the browser process and chromedp's goroutines.
		closeCtx, closeCancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(closeCtx); err != nil {
			t.Logf("close browser: %v", err)
		}
		closeCancel()
		cancel()
		allocCancel()
		<-collected

		consoleMu.Lock()
		defer consoleMu.Unlock()
		for _, m := range console {
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				t.Errorf("page error: %s:%d %s", m.URL, m.Line+1, m)
			} else if t.Failed() {
				t.Logf("console %s: %s", m.Type, m)
			}
		}
		checkNoProcesses(t, profile)
	})
	return ctx
}

// checkNoProcesses fails the test if a process still runs with the
// browser profile, after a short grace period for exiting children, and
// kills what it finds: those are this test's own chromium processes.
func checkNoProcesses(t *testing.T, profile string) {
	t.Helper()
	want := "--user-data-dir=" + profile
	find := func() []int {
		var pids []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			if slices.Contains(strings.Split(string(cmdline), "\x00"), want) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := find()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("chromium processes left behind: %v", pids)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowser drives the web terminal in headless chromium: typing and
// output, a reload that reattaches, a server-side cut that the page
// recovers from by itself, a window resize that reaches the PTY, the end
// of the session, and a query the bridge refuses.
func TestBrowser(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	p := &browserPage{t: t, ctx: ctx}
	// Registered after the browser's cleanup, so it runs before it, while
	// the page is still there to photograph.
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})

	pageURL := d.base + "?" + url.Values{"command": {testShell}}.Encode()
	navCtx, navCancel := context.WithTimeout(ctx, 30*time.Second)
	err := chromedp.Do(navCtx, chromedp.Navigate(pageURL))
	navCancel()
	if err != nil {
		t.Fatalf("open %s: %v", pageURL, err)
	}

	// The page makes up a session UUID and keeps it in its URL.
	s := p.waitFor("connect", 20*time.Second, func(s *pageState) bool { return s.State == "connected" })
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	id := u.Query().Get("reconnect")
	if id == "" || id != s.SessionID || u.Query().Get("command") != testShell {
		t.Fatalf("page URL %s: want reconnect=%s and the command kept", s.URL, s.SessionID)
	}

	// Typing reaches the shell, its output the screen.
	p.typeKeys("echo hello-browser\r")
	p.waitFor("hello-browser on screen", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "hello-browser") == 1
	})
	// A character split across two output messages still renders: the
	// page hands xterm bytes, not text decoded message by message. The
	// pause makes the shell's two writes two PTY reads.
	p.typeKeys(`printf 'split-\xc3'; sleep 0.3; printf '\xa9-ok\n'` + "\r")
	p.waitFor("a split UTF-8 character", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "split-é-ok") == 1
	})
	p.typeKeys("echo shell-pid=$$\r")
	pidRE := regexp.MustCompile(`^shell-pid=(\d+)$`)
	var pid string
	p.waitFor("shell pid on screen", 10*time.Second, func(s *pageState) bool {
		for _, l := range s.Lines {
			if m := pidRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
				pid = m[1]
				return true
			}
		}
		return false
	})
	p.screenshot("typed.png")

	// A reload reattaches to the same shell and shows its earlier output.
	relCtx, relCancel := context.WithTimeout(ctx, 30*time.Second)
	err = chromedp.Do(relCtx, chromedp.Reload())
	relCancel()
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	s = p.waitFor("reattach after reload", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && countLines(s.Lines, "hello-browser") == 1 &&
			countLines(s.Lines, "shell-pid="+pid) == 1
	})
	if s.SessionID != id {
		t.Fatalf("after reload the session is %s, want %s", s.SessionID, id)
	}
	p.typeKeys("echo again-pid=$$\r")
	p.waitFor("same shell after reload", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "again-pid="+pid) == 1
	})

	// Cut the WebSocket from the server side: the page reconnects by
	// itself, replays without doubling, and typing works again.
	before := s.Connects
	if n := d.cut(); n == 0 {
		t.Fatal("no WebSocket connection to cut")
	}
	p.waitFor("reconnect after a cut", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && s.Connects > before
	})
	p.typeKeys("echo after-cut-$((6*7))\r")
	s = p.waitFor("typing after the reconnect", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "after-cut-42") == 1
	})
	if n := countLines(s.Lines, "hello-browser"); n != 1 {
		t.Errorf("after the reconnect hello-browser is on screen %d times, want once:\n%s", n, screenText(s.Lines))
	}

	// A smaller window refits the terminal, and the PTY follows.
	rows, cols := s.Rows, s.Cols
	rsCtx, rsCancel := context.WithTimeout(ctx, 10*time.Second)
	w, err := chromedp.Call(rsCtx, browser.GetWindowForTarget, browser.GetWindowForTargetParams{})
	if err == nil {
		_, err = chromedp.Call(rsCtx, browser.SetWindowBounds, browser.SetWindowBoundsParams{
			WindowID: w.WindowID,
			Bounds:   &browser.Bounds{Width: 720, Height: 420, WindowState: browser.WindowStateNormal},
		})
	}
	rsCancel()
	if err != nil {
		t.Fatalf("resize window: %v", err)
	}
	s = p.waitFor("terminal refit", 10*time.Second, func(s *pageState) bool {
		return s.Rows < rows && s.Cols < cols
	})
	p.typeKeys("stty size\r")
	want := fmt.Sprintf("%d %d", s.Rows, s.Cols)
	p.waitFor("stty size "+want, 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, want) == 1
	})
	p.screenshot("resized.png")

	// When the shell exits the page says the session ended and stops
	// reconnecting; Enter starts a new session under a new UUID.
	p.typeKeys("exit\r")
	s = p.waitFor("session ended", 10*time.Second, func(s *pageState) bool {
		return s.State == "ended" && strings.Contains(s.Status, "session ended") &&
			slices.ContainsFunc(s.Lines, func(l string) bool { return strings.Contains(l, "[session ended") })
	})
	p.screenshot("ended.png")
	ended := s.Connects
	p.typeKeys("\r")
	s = p.waitFor("new session", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && s.Connects > ended && s.SessionID != id
	})
	if !strings.Contains(s.URL, "reconnect="+s.SessionID) {
		t.Errorf("page URL %s does not name the new session %s", s.URL, s.SessionID)
	}
	p.typeKeys("echo new-pid=$$\r")
	p.waitFor("a new shell", 10*time.Second, func(s *pageState) bool {
		return slices.ContainsFunc(s.Lines, func(l string) bool {
			l = strings.TrimSpace(l)
			return strings.HasPrefix(l, "new-pid=") && l != "new-pid="+pid
		}) && countLines(s.Lines, "hello-browser") == 0
	})

	// A query the bridge refuses (400) is shown, not retried forever.
	navCtx, navCancel = context.WithTimeout(ctx, 30*time.Second)
	err = chromedp.Do(navCtx, chromedp.Navigate(d.base+"?backend=tmux"))
	navCancel()
	if err != nil {
		t.Fatalf("open the page with a bad backend: %v", err)
	}
	p.waitFor("the bridge's 400 on the page", 10*time.Second, func(s *pageState) bool {
		return s.State == "error" && strings.Contains(s.Status, `invalid backend parameter "tmux"`)
	})
}
