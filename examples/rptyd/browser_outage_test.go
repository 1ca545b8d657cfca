package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/netnstest"
)

// tickCommand prints a numbered tick every 50 ms and answers every input
// line with "got:<line>", without echo.
const tickCommand = `bash --norc --noprofile -c 'stty -echo; (i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.05; done) & ` +
	`while IFS= read -r l; do echo "got:$l"; done'`

// watchOutageJS records, with the wall clock, every line the terminal
// completes (at its line feed, as xterm.js parses it: what the buffer, and
// so the screen, holds) and every change of the page's state (its pill),
// so that the test's timings do not depend on how often it polls.
const watchOutageJS = `(() => {
	const r = window.rpty;
	const w = { lines: [], states: [] };
	window.outageWatch = w;
	r.term.onLineFeed(() => {
		const b = r.term.buffer.active;
		const l = b.getLine(b.baseY + b.cursorY - 1);
		w.lines.push({ t: Date.now(), s: l ? l.translateToString(true) : '' });
	});
	const pill = document.getElementById('status');
	new MutationObserver(() => w.states.push({ t: Date.now(), s: pill.dataset.state }))
		.observe(pill, { attributes: true, attributeFilter: ['data-state'] });
	return true;
})()`

type stampedText struct {
	T int64  `json:"t"` // Unix milliseconds
	S string `json:"s"`
}

type outageWatch struct {
	Lines  []stampedText `json:"lines"`
	States []stampedText `json:"states"`
}

var pageTickRE = regexp.MustCompile(`^tick (\d+)$`)

// ticks are the tick numbers among lines, in order, and the time of the
// first tick above after (0 if none).
func (w *outageWatch) ticks(above int) (all []int, firstAbove int64) {
	for _, l := range w.Lines {
		m := pageTickRE.FindStringSubmatch(strings.TrimSpace(l.S))
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		all = append(all, n)
		if n > above && firstAbove == 0 {
			firstAbove = l.T
		}
	}
	return all, firstAbove
}

func (w *outageWatch) count(line string) int {
	n := 0
	for _, l := range w.Lines {
		if strings.TrimSpace(l.S) == line {
			n++
		}
	}
	return n
}

// startBrowserInNamespace runs chromium inside ns, through a wrapper that
// chromedp starts in its place: the DevTools pipe (file descriptors 3 and
// 4) passes through ip netns exec.
func startBrowserInNamespace(t *testing.T, ns *netnstest.NS) *browserPage {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed: apt-get install chromium")
	}
	wrapper := filepath.Join(t.TempDir(), "chromium-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", ns.Name(), path)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &browserPage{t: t, ctx: startBrowserAt(t, wrapper)}
}

// TestBrowserOutage runs the daemon and headless chromium inside a network
// namespace of the test's own, and drops the daemon port's packets both
// ways with nftables (pure silence: no reset, no ICMP) while the session
// prints a numbered tick every 50 ms and keys are typed. Per outage
// (netnstest.Outages: RPTY_OUTAGES, RPTY_OUTAGE_COUNT; one of 5 s by
// default) the page's pill says reconnecting within 5 s, output is on the
// screen again within 1 s of the network's return (p95), and the typed
// lines reach the program once; over the run no tick is lost or repeated.
// CI runs one 5 s outage; RPTY_OUTAGES=20s,60s,10m and RPTY_OUTAGE_COUNT
// run the longer ones and more of them.
func TestBrowserOutage(t *testing.T) {
	if why := netnstest.Available(); why != "" {
		t.Skip(why)
	}
	plan := netnstest.Outages(t)
	ns := netnstest.New(t)
	p := startBrowserInNamespace(t, ns)
	ln, err := ns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	var conns netnstest.Conns
	newTestDaemonOn(t, ln, func(c *reconnectingpty.Config) {
		c.ReportConnection = conns.Report
		// A session outlives its last connection for Timeout; an outage
		// longer than the default would end it.
		for _, d := range plan {
			c.Timeout = max(c.Timeout, 5*time.Minute, d+time.Minute)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	p.navigate("http://" + ln.Addr().String() + "/?" + url.Values{"command": {tickCommand}}.Encode())
	p.waitFor("the ticks", 30*time.Second, func(s *pageState) bool { return s.State == "connected" && countLines(s.Lines, "tick 5") == 1 })
	// A page that has been connected a while: the link extension is on
	// and has measured the round trip.
	waitCounters(t, p, "a measured round trip", func(c linkCounters) bool { return c.Link != nil && *c.Link && c.RTT > 0 })
	// The probe frames loaded (probe.js): the probes have eight socket
	// groups to spread over.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n := eval[int](p, "window.rpty.probeGroups")
		if n == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page's probes have %d socket groups, want 8 (the page's and three frames', with and without credentials)", n)
		}
	}
	if !eval[bool](p, watchOutageJS) {
		t.Fatal("the outage watcher did not install")
	}
	watch := func() *outageWatch { return eval[*outageWatch](p, "window.outageWatch") }
	lastTick := func() int {
		all, _ := watch().ticks(0)
		if len(all) == 0 {
			return 0
		}
		return all[len(all)-1]
	}
	waitWatch := func(what string, d time.Duration, cond func(*outageWatch) bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			w := watch()
			if cond(w) {
				return
			}
			if time.Now().After(deadline) {
				all, _ := w.ticks(0)
				t.Fatalf("%s: not within %s; ticks seen %d (last %v), states %v", what, d, len(all), all[max(len(all)-3, 0):], w.States)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	var outages []netnstest.Outage
	for i, length := range plan {
		// Ticks flowing on a live connection first.
		from := lastTick()
		waitWatch("ticks before the outage", 20*time.Second, func(w *outageWatch) bool {
			all, _ := w.ticks(0)
			return len(all) > 0 && all[len(all)-1] >= from+10
		})
		o := netnstest.Outage{Length: length, Noticed: -1, ServerHeld: -1}
		rtt := eval[float64](p, "window.rpty.rtt")
		blocked := time.Now()
		if err := ns.Block(port); err != nil {
			t.Fatal(err)
		}
		keys, gap := netnstest.KeysFor(length)
		for k := 1; k <= keys; k++ {
			time.Sleep(gap)
			p.typeKeys(fmt.Sprintf("key %d.%d\r", i+1, k))
		}
		time.Sleep(time.Until(blocked.Add(length)))
		before := lastTick()
		if err := ns.Unblock(); err != nil {
			t.Fatal(err)
		}
		returned := time.Now()
		waitWatch("output after the network returned", 30*time.Second, func(w *outageWatch) bool {
			_, at := w.ticks(before)
			return at != 0
		})
		w := watch()
		_, at := w.ticks(before)
		o.Live = max(time.UnixMilli(at).Sub(returned), 0)
		for _, s := range w.States {
			if s.S == "reconnecting" && s.T >= blocked.UnixMilli() {
				if s.T < returned.UnixMilli() {
					o.Noticed = time.UnixMilli(s.T).Sub(blocked)
				}
				break
			}
		}
		var timeline []string
		for _, s := range w.States {
			if s.T >= blocked.UnixMilli() {
				timeline = append(timeline, fmt.Sprintf("%s at %+.2fs", s.S, time.UnixMilli(s.T).Sub(returned).Seconds()))
			}
		}
		probes := eval[[]int](p, "[window.rpty.probes, window.rpty.probeAnswers, window.rpty.stuckOpens, window.rpty.reopens]")
		t.Logf("outage %d: silenced at %s, back at %s (UTC); round trip %.1f ms before it; the pill, from the network's return: %s; so far %d probes of the path, %d answered, %d opening WebSockets replaced on an answer, %d before one",
			i+1, blocked.UTC().Format("15:04:05.000"), returned.UTC().Format("15:04:05.000"), rtt, strings.Join(timeline, ", "), probes[0], probes[1], probes[2], probes[3])
		o.Keys = keys
		for k := 1; k <= keys; k++ {
			line := fmt.Sprintf("got:key %d.%d", i+1, k)
			waitWatch(line, 20*time.Second, func(w *outageWatch) bool { return w.count(line) > 0 })
		}
		if held, why, ok := conns.WaitHeld(blocked, 20*time.Second); ok {
			o.ServerHeld, o.ServerWhy = held, why
		}
		outages = append(outages, o)
	}
	time.Sleep(300 * time.Millisecond)
	w := watch()
	for i := range outages {
		for k := 1; k <= outages[i].Keys; k++ {
			if w.count(fmt.Sprintf("got:key %d.%d", i+1, k)) == 1 {
				outages[i].KeysOnce++
			}
		}
	}
	all, _ := w.ticks(0)
	lost, repeated := netnstest.LostRepeated(all)
	netnstest.Check(t, "web page (chromium)", outages, lost, repeated)
}
