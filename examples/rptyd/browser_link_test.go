package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// readLinesCommand answers every input line with "got:<line>", without
// echo, so that each line the program takes shows once.
const readLinesCommand = `bash --norc --noprofile -c 'stty -echo; echo READY; while IFS= read -r l; do echo "got:$l"; done'`

// silenceProxy forwards loopback TCP to the daemon and can make every
// connection through it go silent: bytes stop in both directions, nothing
// errors, as when a laptop's Wi-Fi goes away.
type silenceProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	pairs []*silentPair
}

type silentPair struct {
	a, b   net.Conn
	silent atomic.Bool
}

func newSilenceProxy(t *testing.T, target string) *silenceProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silenceProxy{ln: ln, target: target}
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				_ = a.Close()
				continue
			}
			pr := &silentPair{a: a, b: b}
			p.mu.Lock()
			p.pairs = append(p.pairs, pr)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.forward(pr, a, b)
			go p.forward(pr, b, a)
		}
	}()
	t.Cleanup(func() {
		// No pair may be added once they are being closed: the page is
		// still open and may be connecting again right now.
		_ = ln.Close()
		<-accepting
		p.mu.Lock()
		for _, pr := range p.pairs {
			_ = pr.a.Close()
			_ = pr.b.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *silenceProxy) forward(pr *silentPair, src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pr.silent.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				_ = src.Close()
				return
			}
		}
		if err != nil {
			if !pr.silent.Load() && err == io.EOF {
				_ = dst.Close()
			}
			return
		}
	}
}

// silence makes every connection so far go silent, and reports how many.
func (p *silenceProxy) silence() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pr := range p.pairs {
		if !pr.silent.Swap(true) {
			n++
		}
	}
	return n
}

type linkCounters struct {
	Link      *bool   `json:"link"`
	RTT       float64 `json:"rtt"`
	DeadLinks int     `json:"deadLinks"`
	Stalls    int     `json:"stalls"`
	Connects  int     `json:"connects"`
	Unacked   int     `json:"unacked"`
}

const linkCountersJS = `({link: window.rpty.link, rtt: window.rpty.rtt, deadLinks: window.rpty.deadLinks,
	stalls: window.rpty.stalls, connects: window.rpty.connects, unacked: window.rpty.inputUnacked})`

// openLinkPage opens the page on readLinesCommand through a silenceProxy
// to a test daemon, and returns once the program is ready and the page has
// measured the link's round trip.
func openLinkPage(t *testing.T) (*testDaemon, *silenceProxy, *browserPage) {
	t.Helper()
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	base, err := url.Parse(d.base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newSilenceProxy(t, base.Host)
	p := openPage(t, ctx, "http://"+proxy.ln.Addr().String()+"/?"+url.Values{"command": {readLinesCommand}}.Encode())
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	p.waitFor("the program", 30*time.Second, func(s *pageState) bool { return countLines(s.Lines, "READY") == 1 })
	waitCounters(t, p, "a measured round trip", func(c linkCounters) bool { return c.Link != nil && *c.Link && c.RTT > 0 })
	return d, proxy, p
}

// TestBrowserLinkSilenceAndCuts: the page measures the round trip, notices
// a path gone silent within seconds (no error ever comes), reconnects at
// once, and what was typed into the dead connection reaches the program
// once; lines typed while connections are reset arrive once each.
func TestBrowserLinkSilenceAndCuts(t *testing.T) {
	d, proxy, p := openLinkPage(t)
	p.typeKeys("line 1\r")
	p.waitFor("line 1", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "got:line 1") == 1 })

	before := eval[linkCounters](p, linkCountersJS)
	if proxy.silence() == 0 {
		t.Fatal("no connection to silence")
	}
	silenced := time.Now()
	p.typeKeys("line 2\r") // into the dead connection
	waitCounters(t, p, "the dead link noticed", func(c linkCounters) bool { return c.DeadLinks > before.DeadLinks })
	noticed := time.Since(silenced)
	p.waitFor("line 2 after the reconnect", 20*time.Second, func(s *pageState) bool { return countLines(s.Lines, "got:line 2") == 1 })
	live := time.Since(silenced)
	if noticed > 5*time.Second {
		t.Errorf("the page noticed the silent link after %s, want within 5 s", noticed)
	}
	t.Logf("silent link noticed after %s; line 2 on screen %s after the silence began", noticed.Round(10*time.Millisecond), live.Round(10*time.Millisecond))

	// Lines typed while the connection is reset under them.
	const lines = 40
	for i := 3; i <= lines; i++ {
		p.typeKeys(fmt.Sprintf("line %d\r", i))
		if i%7 == 0 {
			d.cut()
		}
	}
	p.waitFor("the last line", 30*time.Second, func(s *pageState) bool { return countLines(s.Lines, fmt.Sprintf("got:line %d", lines)) == 1 })
	time.Sleep(300 * time.Millisecond)
	got := eval[[]string](p, bufferJS)
	next := 1
	for _, l := range got {
		if !strings.HasPrefix(l, "got:") {
			continue
		}
		if want := fmt.Sprintf("got:line %d", next); l != want {
			t.Fatalf("%q where %q was due: input lost, doubled or reordered; buffer:\n%s", l, want, strings.Join(got, "\n"))
		}
		next++
	}
	if next != lines+1 {
		t.Fatalf("%d lines reached the program, want %d", next-1, lines)
	}
	waitCounters(t, p, "every input taken", func(c linkCounters) bool { return c.Unacked == 0 })
}

func waitCounters(t *testing.T, p *browserPage, what string, cond func(linkCounters) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := eval[linkCounters](p, linkCountersJS)
		if cond(c) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s; counters %+v", what, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// typeOnOpenJS, run before the page's own scripts, makes the terminal
// type "line N\r" as the page's Nth WebSocket opens: before that
// connection's first bytes, which say whether its server has the link
// extension, can have arrived.
const typeOnOpenJS = `(() => {
	const Native = window.WebSocket;
	let n = 0;
	window.WebSocket = class extends Native {
		constructor(...args) {
			super(...args);
			const k = ++n;
			this.addEventListener('open', () => window.rpty.term.input('line ' + k + '\r'));
		}
	};
})()`

// TestBrowserInputBeforeTheFirstBytesCountsOnce: keys typed as a
// connection opens, before its server has said it has the link extension,
// are kept and counted like any others, so that after a drop the page
// resends from where the program's input really stands: a key typed on
// the first connection and one typed as the next opens each reach the
// program once.
func TestBrowserInputBeforeTheFirstBytesCountsOnce(t *testing.T) {
	ctx := startBrowser(t)
	d := newTestDaemon(t)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: typeOnOpenJS})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	p := openPage(t, ctx, d.base+"/?"+url.Values{"command": {readLinesCommand}}.Encode())
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failure.png")
		}
	})
	p.waitFor("line 1", 20*time.Second, func(s *pageState) bool { return countLines(s.Lines, "got:line 1") == 1 })
	waitCounters(t, p, "line 1 taken", func(c linkCounters) bool { return c.Link != nil && *c.Link && c.Unacked == 0 })
	if taken := eval[int](p, `rpty.inputTaken`); taken != len("line 1\r") {
		t.Fatalf("the page counts %d bytes of its input taken, want %d: what it typed before the first bytes was not counted", taken, len("line 1\r"))
	}

	before := eval[linkCounters](p, linkCountersJS)
	if d.cut() == 0 {
		t.Fatal("no connection to cut")
	}
	waitCounters(t, p, "the reconnect", func(c linkCounters) bool { return c.Connects > before.Connects })
	p.typeKeys("line 3\r")
	p.waitFor("line 3", 20*time.Second, func(s *pageState) bool { return countLines(s.Lines, "got:line 3") == 1 })
	waitCounters(t, p, "every input taken", func(c linkCounters) bool { return c.Unacked == 0 })
	got := eval[[]string](p, bufferJS)
	var gotLines []string
	for _, l := range got {
		if strings.HasPrefix(l, "got:") {
			gotLines = append(gotLines, l)
		}
	}
	if want := []string{"got:line 1", "got:line 2", "got:line 3"}; !slices.Equal(gotLines, want) {
		t.Fatalf("the program got %q, want %q; buffer:\n%s", gotLines, want, strings.Join(got, "\n"))
	}
}

// TestBrowserHeldPageKeepsItsLink: a page whose main thread is held for
// longer than the link's timeout (a long task, a frozen tab) sent no
// heartbeat and read nothing meanwhile, but its connection is fine: it
// keeps it, and a path that goes silent afterwards is still noticed
// within seconds.
func TestBrowserHeldPageKeepsItsLink(t *testing.T) {
	_, proxy, p := openLinkPage(t)

	before := eval[linkCounters](p, linkCountersJS)
	eval[bool](p, `(() => { const end = performance.now() + 5000; while (performance.now() < end) {} return true; })()`)
	waitCounters(t, p, "the hold seen", func(c linkCounters) bool { return c.Stalls > before.Stalls })
	p.typeKeys("after the hold\r")
	p.waitFor("the line typed after the hold", 10*time.Second, func(s *pageState) bool { return countLines(s.Lines, "got:after the hold") == 1 })
	// Two more heartbeats: the verdict, if any, has been given.
	time.Sleep(2500 * time.Millisecond)
	if c := eval[linkCounters](p, linkCountersJS); c.DeadLinks != before.DeadLinks || c.Connects != before.Connects {
		t.Fatalf("after a 5 s hold of the page: connections %d (before %d), left for dead %d (before %d); want the same connection",
			c.Connects, before.Connects, c.DeadLinks, before.DeadLinks)
	}

	// The watchdog still works: a silent path is noticed within 5 s.
	if proxy.silence() == 0 {
		t.Fatal("no connection to silence")
	}
	silenced := time.Now()
	waitCounters(t, p, "the dead link noticed", func(c linkCounters) bool { return c.DeadLinks > before.DeadLinks })
	if noticed := time.Since(silenced); noticed > 5*time.Second {
		t.Errorf("the page noticed the silent link after %s, want within 5 s", noticed)
	}
}
