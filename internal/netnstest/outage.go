package netnstest

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Outages is the plan of a client's outage test: RPTY_OUTAGES lists the
// lengths (default "5s"; e.g. "5s,60s,10m"), and RPTY_OUTAGE_COUNT says
// how many outages of each length to run (default 1), so that a p95 over
// them means something.
func Outages(t testing.TB) []time.Duration {
	t.Helper()
	lengths := []time.Duration{5 * time.Second}
	if v := os.Getenv("RPTY_OUTAGES"); v != "" {
		lengths = nil
		for _, s := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil || d <= 0 {
				t.Fatalf("RPTY_OUTAGES=%q: %q is not a positive duration", v, s)
			}
			lengths = append(lengths, d)
		}
	}
	count := 1
	if v := os.Getenv("RPTY_OUTAGE_COUNT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("RPTY_OUTAGE_COUNT=%q: want a positive number", v)
		}
		count = n
	}
	var plan []time.Duration
	for _, d := range lengths {
		for range count {
			plan = append(plan, d)
		}
	}
	return plan
}

// KeysFor is how many lines a test types during an outage of d, and how
// long it waits before each: spread over its first seconds, at most one a
// second, so that a long outage does not type for minutes.
func KeysFor(d time.Duration) (keys int, gap time.Duration) {
	keys = min(4, max(1, int(d/time.Second)-1))
	return keys, min(d/time.Duration(keys+1), time.Second)
}

// P95 is the 95th percentile of ds (nearest rank); 0 for none.
func P95(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (95*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

// LostRepeated counts, in a sequence of tick numbers as a client showed
// them, the numbers skipped and the numbers shown again.
func LostRepeated(ticks []int) (lost, repeated int) {
	last := 0
	for i, n := range ticks {
		switch {
		case i > 0 && n <= last:
			repeated++
		case i > 0 && n > last+1:
			lost += n - last - 1
		}
		last = max(last, n)
	}
	return lost, repeated
}

// Conns records when a server's connections attach and close; its Report
// is a reconnectingpty.Config.ReportConnection.
type Conns struct {
	mu    sync.Mutex
	conns []*trackedConn
}

type trackedConn struct {
	opened, closed time.Time
	reason         string
}

// Report records a connection that attached now, and its close.
func (c *Conns) Report(uuid.UUID, string) func(int, string) {
	tc := &trackedConn{opened: time.Now()}
	c.mu.Lock()
	c.conns = append(c.conns, tc)
	c.mu.Unlock()
	return func(_ int, reason string) {
		c.mu.Lock()
		tc.closed, tc.reason = time.Now(), reason
		c.mu.Unlock()
	}
}

// Held says how long after at the server closed the last of the
// connections open at that moment, and why; ok is false while one is still
// open (or none was).
func (c *Conns) Held(at time.Time) (held time.Duration, why string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, tc := range c.conns {
		if tc.opened.After(at) || (!tc.closed.IsZero() && tc.closed.Before(at)) {
			continue
		}
		n++
		if tc.closed.IsZero() {
			return 0, "", false
		}
		if d := tc.closed.Sub(at); d >= held {
			held, why = d, tc.reason
		}
	}
	return held, why, n > 0
}

// WaitHeld waits up to d for Held(at) to be known.
func (c *Conns) WaitHeld(at time.Time, d time.Duration) (held time.Duration, why string, ok bool) {
	deadline := time.Now().Add(d)
	for {
		held, why, ok = c.Held(at)
		if ok || time.Now().After(deadline) {
			return held, why, ok
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Outage is what a user met in one silent outage.
type Outage struct {
	Length time.Duration
	// Noticed is from the silence to the client saying it reconnects;
	// negative when it did not say so before the path returned.
	Noticed time.Duration
	// Live is from the path's return to new output on screen.
	Live time.Duration
	// ServerHeld is from the silence to the server's close of the dead
	// connection, negative while still held; ServerWhy its reason.
	ServerHeld time.Duration
	ServerWhy  string
	// Keys were typed during the outage; KeysOnce reached the program
	// exactly once.
	Keys, KeysOnce int
}

// Row is the outage as a row of docs/network.md's table, after the
// client's name and with the ticks lost and repeated over the run.
func (o Outage) Row(client string, lost, repeated int) string {
	noticed := "not during the outage"
	if o.Noticed >= 0 {
		noticed = o.Noticed.Round(10 * time.Millisecond).String()
	}
	held := "still held when checked"
	if o.ServerHeld >= 0 {
		held = fmt.Sprintf("%s (%s)", o.ServerHeld.Round(100*time.Millisecond), o.ServerWhy)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %d / %d | %d of %d | %s |", client, o.Length, noticed,
		o.Live.Round(10*time.Millisecond), lost, repeated, o.KeysOnce, o.Keys, held)
}

// Check fails t unless every outage was noticed within 5 s and its keys
// arrived once, the p95 of the output's return over the outages of each
// length is within 1 s, and no tick was lost or repeated; it logs the
// table and the p95s.
func Check(t testing.TB, client string, outages []Outage, lost, repeated int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("\n| client | outage | noticed | output after the network returns | ticks lost / repeated | keys typed in the outage delivered once | server closed the dead connection after |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	byLength := map[time.Duration][]time.Duration{}
	var lengths []time.Duration
	for _, o := range outages {
		b.WriteString(o.Row(client, lost, repeated) + "\n")
		if _, ok := byLength[o.Length]; !ok {
			lengths = append(lengths, o.Length)
		}
		byLength[o.Length] = append(byLength[o.Length], o.Live)
		if o.Noticed < 0 || o.Noticed > 5*time.Second {
			t.Errorf("%s outage: the client said it was reconnecting after %s, want within 5 s", o.Length, o.Noticed)
		}
		if o.KeysOnce != o.Keys {
			t.Errorf("%s outage: %d of %d lines typed during it reached the program once", o.Length, o.KeysOnce, o.Keys)
		}
		if o.Length >= 15*time.Second && (o.ServerHeld < 0 || o.ServerHeld > 15*time.Second) {
			t.Errorf("%s outage: the server kept the dead connection %s, want it closed within 15 s", o.Length, o.ServerHeld)
		}
	}
	for _, d := range lengths {
		p := P95(byLength[d])
		fmt.Fprintf(&b, "%s: output back after the network returned, p95 over %d outages of %s: %s\n",
			client, len(byLength[d]), d, p.Round(10*time.Millisecond))
		if p > time.Second {
			t.Errorf("%s outages: output came back %s (p95 over %d) after the network returned, want within 1 s", d, p, len(byLength[d]))
		}
	}
	if lost != 0 || repeated != 0 {
		t.Errorf("%d ticks lost, %d repeated, want none", lost, repeated)
	}
	t.Log(b.String())
}
