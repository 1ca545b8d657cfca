package client_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"cdr.dev/slog/v3"
	"cdr.dev/slog/v3/sloggers/slogtest"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// readLines answers every input line with "got:<line>", without echo, so
// that each line the program takes shows exactly once.
const readLines = `stty -echo; echo READY; while IFS= read -r l; do echo "got:$l"; done`

func linkServer(t *testing.T, cfg reconnectingpty.Config) string {
	t.Helper()
	cfg.Commander = reconnectingpty.LocalCommander{Shell: "/bin/bash"}
	cfg.Backend = reconnectingpty.BackendBuffered
	return rptytest.StartServer(t, cfg).Addr().String()
}

func tcpDial(addr string) client.DialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func dialLines(t *testing.T, dial client.DialFunc, opts client.Options) (*client.Client, *output) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, dial, reconnectingpty.Init{
		Height: 24, Width: 200, Command: readLines, BackendType: string(reconnectingpty.BackendBuffered),
	}, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	out := readOutput(c)
	out.waitFor(t, "READY")
	return c, out
}

// requireEachLineOnce checks that lines 1..n reached the program once
// each, in order.
func requireEachLineOnce(t *testing.T, out string, n int) {
	t.Helper()
	next := 1
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if !strings.HasPrefix(l, "got:") {
			continue
		}
		want := fmt.Sprintf("got:line %d", next)
		if l != want {
			t.Fatalf("line %q where %q was due: input lost, doubled or reordered; output:\n%s", l, want, out)
		}
		next++
	}
	if next != n+1 {
		t.Fatalf("%d lines reached the program, want %d", next-1, n)
	}
}

// TestInputExactlyOnceAcrossCuts types numbered lines while a proxy cuts
// the connection at random moments, by reset, hang-up or silence: every
// line reaches the program exactly once, in order.
func TestInputExactlyOnceAcrossCuts(t *testing.T) {
	t.Parallel()
	proxy := newCutProxy(t, linkServer(t, reconnectingpty.Config{HeartbeatTimeout: time.Second, Logger: slogtest.Make(t, &slogtest.Options{IgnoreErrors: true}).Leveled(slog.LevelDebug)}))
	ev := newEvents()
	c, out := dialLines(t, tcpDial(proxy.addr()), client.Options{
		OnState: func(e client.Event) { t.Logf("%s %v", e.State, e.Err); ev.record(e) }, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		HeartbeatInterval: 50 * time.Millisecond, LinkTimeout: 400 * time.Millisecond,
	})
	defer closeClient(t, c, out)

	const lines = 300
	typed := make(chan struct{})
	go func() {
		defer close(typed)
		for i := 1; i <= lines; i++ {
			if _, err := c.Write([]byte(fmt.Sprintf("line %d\r", i))); err != nil {
				return
			}
			time.Sleep(3 * time.Millisecond)
		}
	}()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	cuts := map[cutMode]int{}
	for done := false; !done; {
		select {
		case <-typed:
			done = true
		case <-time.After(time.Duration(20+r.IntN(150)) * time.Millisecond):
			mode := cutMode(r.IntN(3))
			proxy.cut(mode)
			cuts[mode]++
		}
	}
	out.waitFor(t, fmt.Sprintf("got:line %d\r\n", lines))
	time.Sleep(200 * time.Millisecond) // a doubled last line would show by now
	requireEachLineOnce(t, out.String(), lines)
	t.Logf("cuts: %v", cuts)
	if st := c.Link(); !st.Active || st.InputTaken != st.InputSent {
		t.Fatalf("link status %+v: want active, everything sent taken", st)
	}
}

// TestSilentLinkIsNoticedWithinFiveSeconds: with the default options, a
// connection that stops delivering while the terminal is idle is noticed
// (OnState reconnecting) within 5 s, and the client is live again as soon
// as the path works.
func TestSilentLinkIsNoticedWithinFiveSeconds(t *testing.T) {
	t.Parallel()
	proxy := newCutProxy(t, linkServer(t, reconnectingpty.Config{}))
	ev := newEvents()
	c, out := dialLines(t, tcpDial(proxy.addr()), client.Options{OnState: ev.record})
	defer closeClient(t, c, out)
	ev.waitFor(t, client.StateConnected)
	waitActive(t, c)

	start := time.Now()
	proxy.cut(cutSilence)
	got := ev.waitFor(t, client.StateReconnecting)
	noticed := time.Since(start)
	if noticed > 5*time.Second {
		t.Fatalf("noticed after %s, want within 5 s (%v)", noticed, got.Err)
	}
	ev.waitFor(t, client.StateConnected)
	write(t, c, "after\r")
	out.waitFor(t, "got:after")
	t.Logf("silence noticed after %s: %v", noticed.Round(time.Millisecond), got.Err)
}

func waitActive(t *testing.T, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !c.Link().Active || c.Link().RTT == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("link never active: %+v", c.Link())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLinkAgainstAServerWithoutIt: against a server without the extension
// (this server with DisableLink ignores its keys as an old one does), a
// client with it works as before: no stray bytes, input after a reset
// arrives, nothing is resent twice.
func TestLinkAgainstAServerWithoutIt(t *testing.T) {
	t.Parallel()
	ln := rptytest.StartServer(t, reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"}, Backend: reconnectingpty.BackendBuffered,
		DisableLink: true, HeartbeatTimeout: 200 * time.Millisecond,
	})
	ev := newEvents()
	c, out := dialLines(t, tcpDial(ln.Addr().String()), client.Options{
		OnState: ev.record, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		LinkTimeout: 300 * time.Millisecond,
	})
	defer closeClient(t, c, out)
	write(t, c, "line 1\r")
	out.waitFor(t, "got:line 1")
	// Idle past the link timeout: a client that expected heartbeat
	// answers would drop the connection now.
	time.Sleep(time.Second)
	ln.Drop()
	ev.waitFor(t, client.StateReconnecting)
	ev.waitFor(t, client.StateConnected)
	write(t, c, "line 2\r")
	out.waitFor(t, "got:line 2")
	time.Sleep(200 * time.Millisecond)
	requireEachLineOnce(t, out.String(), 2)
	if strings.Contains(out.String(), "\x1b_") {
		t.Fatalf("an APC string reached the terminal: %q", out.String())
	}
	if c.Link().Active {
		t.Fatal("Link().Active against a server without the extension")
	}
	if ln.Accepted() != 2 {
		t.Fatalf("%d connections, want 2: the client dropped a quiet connection to an old server", ln.Accepted())
	}
}
