package client_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
	"github.com/reconnectingpty/reconnectingpty/internal/netnstest"
)

// outageProgram prints a numbered tick every 50 ms and answers every input
// line with "got:<line>", without echo.
const outageProgram = `stty -echo; (i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.05; done) & ` +
	`while IFS= read -r l; do echo "got:$l"; done`

// outageResult is one row of the outage table.
type outageResult struct {
	config          string
	outage          time.Duration
	noticed         time.Duration // block to OnState reconnecting; -1: not before the network returned
	live            time.Duration // unblock to the first new tick
	lost, repeated  int           // ticks
	keys, keysOnce  int           // typed during the outage, and delivered exactly once
	serverHeld      time.Duration // block to the server closing the dead connection; -1: still held
	serverCloseWhy  string
	connsAtRecovery int64
	repeats         []int // the repeated tick numbers, for the log
	resets, replays int
}

// TestOutage cuts a live session's path with nftables inside a network
// namespace of the test's own (packets dropped on arrival both ways: pure
// silence, no reset, no ICMP), types during the outage, lets the path back
// and measures what a user sees. RPTY_OUTAGES lists the outages (default
// "5s"; e.g. "5s,60s,10m") and RPTY_OUTAGE_COUNT how many of each (default
// 1; the p95 of the output's return over them must be within 1 s);
// RPTY_OUTAGE_BEFORE=1 adds the behaviour
// without the link extension and the TCP options (the "before" rows).
func TestOutage(t *testing.T) {
	if why := netnstest.Available(); why != "" {
		t.Skip(why)
	}
	outages := netnstest.Outages(t)
	configs := []string{"after"}
	if os.Getenv("RPTY_OUTAGE_BEFORE") == "1" {
		configs = append([]string{"before", "old-client"}, configs...)
	}
	var rows []outageResult
	for _, d := range outages {
		for _, cfg := range configs {
			t.Run(fmt.Sprintf("%s/%s", cfg, d), func(t *testing.T) {
				r := runOutage(t, cfg, d)
				rows = append(rows, r)
				if r.repeated > 0 || r.lost > 0 {
					t.Logf("repeated ticks %v; resets %d, replays %d", r.repeats, r.resets, r.replays)
				}
				switch cfg {
				case "after":
					requireRecovered(t, r)
				case "old-client":
					if d >= 15*time.Second && (r.serverHeld < 0 || r.serverHeld > 15*time.Second) {
						t.Errorf("server kept an old client's dead connection %s, want it closed within 15 s", heldText(r))
					}
				}
			})
		}
	}
	var b strings.Builder
	b.WriteString("\n| config | outage | noticed by client | output after network returns | ticks lost / repeated | keys typed in outage delivered once | server closed dead conn after |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d / %d | %d of %d | %s |\n", r.config, r.outage,
			durOr(r.noticed, "not during the outage"), r.live.Round(10*time.Millisecond), r.lost, r.repeated,
			r.keysOnce, r.keys, heldText(r))
	}
	// The p95 of the output's return over the outages of each length.
	live := map[time.Duration][]time.Duration{}
	var lengths []time.Duration
	for _, r := range rows {
		if r.config != "after" {
			continue
		}
		if _, ok := live[r.outage]; !ok {
			lengths = append(lengths, r.outage)
		}
		live[r.outage] = append(live[r.outage], r.live)
	}
	for _, d := range lengths {
		p := netnstest.P95(live[d])
		fmt.Fprintf(&b, "after: output back after the network returned, p95 over %d outages of %s: %s\n", len(live[d]), d, p.Round(10*time.Millisecond))
		if p > time.Second {
			t.Errorf("%s outages: output came back %s (p95 over %d) after the network returned, want within 1 s", d, p, len(live[d]))
		}
	}
	t.Log(b.String())
}

func durOr(d time.Duration, never string) string {
	if d < 0 {
		return never
	}
	return d.Round(10 * time.Millisecond).String()
}

func heldText(r outageResult) string {
	if r.serverHeld < 0 {
		return "still held when checked"
	}
	return r.serverHeld.Round(100*time.Millisecond).String() + " (" + r.serverCloseWhy + ")"
}

func requireRecovered(t *testing.T, r outageResult) {
	t.Helper()
	if r.noticed < 0 || r.noticed > 5*time.Second {
		t.Errorf("client noticed the dead link after %s, want within 5 s", r.noticed)
	}
	if r.live > 2*time.Second {
		t.Errorf("output resumed %s after the network returned, want about 1 s", r.live)
	}
	if r.lost != 0 || r.repeated != 0 {
		t.Errorf("%d ticks lost, %d repeated, want none", r.lost, r.repeated)
	}
	if r.keysOnce != r.keys {
		t.Errorf("%d of %d keys typed during the outage reached the program once", r.keysOnce, r.keys)
	}
	if r.outage >= 15*time.Second && (r.serverHeld < 0 || r.serverHeld > 15*time.Second) {
		t.Errorf("server kept the dead connection %s, want it closed within 15 s", heldText(r))
	}
}

var tickRE = regexp.MustCompile(`tick (\d+)\r\n`)

func runOutage(t *testing.T, config string, outage time.Duration) outageResult {
	ns := netnstest.New(t)
	r := outageResult{config: config, outage: outage, noticed: -1, serverHeld: -1}

	var closeMu sync.Mutex
	var closes []time.Time
	var closeWhy []string
	cfg := reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:   reconnectingpty.BackendBuffered,
		// A session outlives its last connection for Timeout: once the
		// server has closed the dead connection, an outage longer than
		// that (5 minutes by default) ends the session.
		Timeout: max(5*time.Minute, outage+time.Minute),
		ReportConnection: func(uuid.UUID, string) func(int, string) {
			return func(_ int, reason string) {
				closeMu.Lock()
				closes = append(closes, time.Now())
				closeWhy = append(closeWhy, reason)
				closeMu.Unlock()
			}
		},
	}
	opts := client.Options{}
	switch config {
	case "old-client":
		// A client without the extension or TCP options against this
		// server: only the server's keepalive and TCP_USER_TIMEOUT
		// notice the silence.
		opts = client.Options{DisableLink: true, TCPUserTimeout: -1, MaxBackoff: 10 * time.Second}
	case "before":
		// What a client and server did before the link extension and
		// the TCP options: Go's default dialer keepalive, 10 s backoff cap.
		cfg.DisableLink, cfg.TCPUserTimeout = true, -1
		opts = client.Options{DisableLink: true, TCPUserTimeout: -1, MaxBackoff: 10 * time.Second}
	}
	srv, err := reconnectingpty.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	var stateMu sync.Mutex
	var reconnectingAt []time.Time
	var resets, replays atomic.Int32
	opts.OnReset = func() { resets.Add(1) }
	opts.OnReplay = func() { replays.Add(1) }
	opts.OnState = func(ev client.Event) {
		if ev.State == client.StateReconnecting {
			stateMu.Lock()
			reconnectingAt = append(reconnectingAt, time.Now())
			stateMu.Unlock()
		}
	}
	addr := ln.Addr().String()
	dctx, dcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer dcancel()
	c, err := client.Dial(dctx, func(ctx context.Context) (net.Conn, error) { return ns.Dial(ctx, addr) },
		reconnectingpty.Init{Height: 24, Width: 80, Command: outageProgram, BackendType: string(reconnectingpty.BackendBuffered)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	defer closeClient(t, c, out)
	out.waitFor(t, "tick 20\r\n")

	blocked := time.Now()
	if err := ns.Block(port); err != nil {
		t.Fatal(err)
	}
	// Keys typed during the outage, spread over its first seconds.
	keys := min(5, max(1, int(outage/time.Second)-1))
	for i := 1; i <= keys; i++ {
		time.Sleep(min(outage/time.Duration(keys+1), time.Second))
		write(t, c, "key "+strconv.Itoa(i)+"\r")
	}
	time.Sleep(time.Until(blocked.Add(outage)))
	before := len(tickRE.FindAllString(out.String(), -1))
	if err := ns.Unblock(); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	// Output on screen again: a tick newer than what was there.
	deadline := returned.Add(20*time.Minute + outage)
	for len(tickRE.FindAllString(out.String(), -1)) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no output %s after the network returned", time.Since(returned))
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.live = time.Since(returned)
	stateMu.Lock()
	if len(reconnectingAt) > 0 && reconnectingAt[0].Before(returned) {
		r.noticed = reconnectingAt[0].Sub(blocked)
	}
	stateMu.Unlock()
	// Let the keys arrive, and the server notice, then count.
	for i := 1; i <= keys; i++ {
		waitUntil(30*time.Second, func() bool { return strings.Contains(out.String(), "got:key "+strconv.Itoa(i)+"\r\n") })
	}
	waitUntil(20*time.Second, func() bool {
		closeMu.Lock()
		defer closeMu.Unlock()
		return len(closes) > 0
	})
	time.Sleep(300 * time.Millisecond)
	text := out.String()
	r.keys = keys
	for i := 1; i <= keys; i++ {
		if strings.Count(text, "got:key "+strconv.Itoa(i)+"\r\n") == 1 {
			r.keysOnce++
		}
	}
	last := 0
	for _, m := range tickRE.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[1])
		switch {
		case n <= last:
			r.repeated++
			r.repeats = append(r.repeats, n)
		case n > last+1:
			r.lost += n - last - 1
		}
		last = max(last, n)
	}
	r.resets, r.replays = int(resets.Load()), int(replays.Load())
	closeMu.Lock()
	if len(closes) > 0 {
		r.serverHeld = closes[0].Sub(blocked)
		r.serverCloseWhy = closeWhy[0]
	}
	closeMu.Unlock()
	r.connsAtRecovery = srv.ConnCount()
	return r
}

func waitUntil(d time.Duration, cond func() bool) {
	deadline := time.Now().Add(d)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}
