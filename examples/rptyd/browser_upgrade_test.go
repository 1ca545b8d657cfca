package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// screenJS is the page's whole buffer (as bufferJS) with the cursor's
// place in it, so that an identical screen means identical text and an
// identical cursor.
const screenJS = `(() => {
	const b = rpty.term.buffer.active;
	const lines = [];
	for (let i = 0; i < b.length; i++) {
		const l = b.getLine(i);
		lines.push(l ? l.translateToString(true).trimEnd() : '');
	}
	while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
	return {lines: lines, cursorX: b.cursorX, cursorY: b.baseY + b.cursorY};
})()`

type pageScreen struct {
	Lines   []string `json:"lines"`
	CursorX int      `json:"cursorX"`
	CursorY int      `json:"cursorY"`
}

// upgradeCloses counts the daemon's "reconnecting pty closed" lines with
// reason server_upgrade for session id.
func upgradeCloses(logs *daemonLog, id string) int {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	n := 0
	for _, line := range logs.lines {
		f, _ := line["fields"].(map[string]any)
		if line["msg"] == "reconnecting pty closed" && f["disconnect_reason"] == "server_upgrade" && f["session_id"] == id {
			n++
		}
	}
	return n
}

// TestBrowserAcrossDaemonUpgrade runs the web page against a real rptyd
// that upgrades in place twice under it. After a SIGUSR2 upgrade the
// page's screen (scrollback, screen and cursor) is exactly the one before,
// got by a delta, with nothing doubled; lines typed while a POST /upgrade
// execs the daemon are held by the page and reach the shell once each, in
// order. The daemon logs server_upgrade for the page's connection at each
// upgrade, and the shell is the same process throughout, which ends when
// the upgraded daemon is killed.
func TestBrowserAcrossDaemonUpgrade(t *testing.T) {
	// Registered first, so it runs last, after the daemon is killed.
	shellPID := 0
	t.Cleanup(func() { rptytest.RequireProcessGone(t, shellPID) })
	ctx := startBrowser(t)
	cmd, logs, _ := startDaemon(t, "--listen", "127.0.0.1:0", "--view-listen", "", "--http", "127.0.0.1:0", "--backend", "vt")
	httpAddr := logs.find(t, "serving http", nil)["addr"].(string)
	p := openPage(t, ctx, "http://"+httpAddr+"/?"+url.Values{"command": {testShell}, "backend": {"vt"}}.Encode())
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	const restored = "reconnecting pty sessions restored"
	// The daemon's log says what each image did, should the page disagree.
	t.Cleanup(func() {
		if t.Failed() {
			logs.mu.Lock()
			for _, l := range logs.lines {
				b, _ := json.Marshal(l)
				t.Logf("daemon: %s", b)
			}
			logs.mu.Unlock()
		}
	})

	// Some output, more than a screenful, and the shell's PID.
	p.typeKeys("PS1='prompt> '; seq -f 'row-%g' 1 60; echo pid=$$\r")
	s := p.waitFor("the output", 20*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "row-60") == 1 && lastNonEmpty(s.Lines) == "prompt>" &&
			slices.ContainsFunc(s.Lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "pid=") })
	})
	id := s.SessionID
	pid := ""
	for _, l := range s.Lines {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "pid="); ok {
			pid = v
		}
	}
	shellPID, _ = strconv.Atoi(pid)
	waitCounters(t, p, "the link extension", func(c linkCounters) bool { return c.Link != nil && *c.Link })
	before := eval[pageScreen](p, screenJS)
	flowBefore := eval[flowCounters](p, flowCountersJS)
	p.screenshot("before-upgrade.png")

	// Upgrade 1, SIGUSR2, nothing typed: the page comes back to the same screen.
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	logs.waitCount(t, restored, 1)
	p.waitFor("the page reconnected after the upgrade", 20*time.Second, func(s *pageState) bool {
		return s.State == "connected" && s.Connects > flowBefore.Connects
	})
	// The reconnect has landed once the page counted a delta or a reset.
	waitFlow(t, p, "the resume", func(c flowCounters) bool {
		return c.Deltas+c.Resets+c.Plain > flowBefore.Deltas+flowBefore.Resets+flowBefore.Plain
	})
	after := eval[pageScreen](p, screenJS)
	flowAfter := eval[flowCounters](p, flowCountersJS)
	p.screenshot("after-upgrade.png")
	if flowAfter.Deltas != flowBefore.Deltas+1 || flowAfter.Resets != flowBefore.Resets || flowAfter.Plain != 0 {
		t.Errorf("the reconnect after the upgrade was not one delta: before %v; after %v", flowBefore, flowAfter)
	}
	if !slices.Equal(after.Lines, before.Lines) || after.CursorX != before.CursorX || after.CursorY != before.CursorY {
		t.Errorf("the screen changed across the upgrade (cursor %d,%d, was %d,%d):\n%s",
			after.CursorX, after.CursorY, before.CursorX, before.CursorY, lineDiff(after.Lines, before.Lines))
	}
	for i := 1; i <= 60; i++ {
		if n := countLines(after.Lines, fmt.Sprintf("row-%d", i)); n != 1 {
			t.Errorf("row-%d is on the page %d times after the upgrade, want once", i, n)
		}
	}

	// Upgrade 2, POST /upgrade, typing throughout: each line once, in order.
	flowBefore = eval[flowCounters](p, flowCountersJS)
	posted := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+httpAddr+"/upgrade", "", nil)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("POST /upgrade answered %s; a successful upgrade has no answer", resp.Status)
		}
		posted <- err
	}()
	type link struct {
		State    string `json:"state"`
		Connects int    `json:"connects"`
	}
	const linkJS = `({state: rpty.state, connects: rpty.connects})`
	typed, disconnected, across := 0, 0, 0
	// A line counts as typed across the reconnect when the page was not
	// connected as it began, or reconnected while it was typed or since
	// the line before it ended (on a quiet machine the drop and the
	// reconnect can both fall between two lines, the line before having
	// gone out on the old connection just before it was cut).
	last := eval[link](p, linkJS)
	for extra := 0; extra < 3; {
		typed++
		start := eval[link](p, linkJS)
		p.typeKeys(fmt.Sprintf("echo got-$((%d+0))\r", typed))
		end := eval[link](p, linkJS)
		if start.State != "connected" {
			disconnected++
		}
		if start.State != "connected" || end.Connects != last.Connects {
			across++
		}
		last = end
		// Three more lines once the new image has restored the session
		// and the page has reconnected to it: the exec can finish before
		// the page has even noticed the drop.
		if logs.count(restored) >= 2 && end.State == "connected" && end.Connects > flowBefore.Connects {
			extra++
		}
		if typed > 500 {
			t.Fatal("the second upgrade did not finish while 500 lines were typed")
		}
	}
	if err := <-posted; err == nil {
		t.Fatal("POST /upgrade: no error")
	}
	t.Logf("%d lines typed across the POST /upgrade: %d began while the page was not connected, %d while it went away or came back",
		typed, disconnected, across)
	if across == 0 {
		t.Error("no line was typed while the page reconnected after the upgrade: the test did not pin held input")
	}
	p.waitFor("the last line", 30*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, fmt.Sprintf("got-%d", typed)) == 1
	})
	waitCounters(t, p, "every input taken", func(c linkCounters) bool { return c.Unacked == 0 })
	p.typeKeys("echo pid=$$ done\r")
	p.waitFor("the shell's PID", 10*time.Second, func(s *pageState) bool {
		return countLines(s.Lines, "pid="+pid+" done") == 1
	})
	if flowAfter = eval[flowCounters](p, flowCountersJS); flowAfter.Connects != flowBefore.Connects+1 ||
		flowAfter.Deltas != flowBefore.Deltas+1 || flowAfter.Resets != flowBefore.Resets {
		t.Errorf("the POST /upgrade did not cost the page exactly one reconnect with a delta: before %v; after %v", flowBefore, flowAfter)
	}
	if err := rptytest.CheckTypedOnce(eval[[]string](p, bufferJS), typed); err != nil {
		t.Fatal(err)
	}
	p.screenshot("after-typing.png")
	if n := upgradeCloses(logs, id); n != 2 {
		t.Errorf("%d server_upgrade closes logged for the page's session %s, want 2", n, id)
	}
}

func lastNonEmpty(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

func waitFlow(t *testing.T, p *browserPage, what string, cond func(flowCounters) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := eval[flowCounters](p, flowCountersJS)
		if cond(c) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s; counters %v", what, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
