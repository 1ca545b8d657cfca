package reconnectingpty

import (
	"context"
	"maps"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty/internal/netnstest"
)

// TestHalfOpenConnectionsAreClosed attaches 500 connections to a session
// inside a network namespace of the test's own, half with the link
// extension and half without, then drops the port's packets both ways
// (nftables): nobody errors, the clients just vanish. The server closes
// every one within 15 s (heartbeat timeout, or keepalive and
// TCP_USER_TIMEOUT for the old ones), attributed network_error, and its
// connection count and heap come back to where they were.
func TestHalfOpenConnectionsAreClosed(t *testing.T) {
	if why := netnstest.Available(); why != "" {
		t.Skip(why)
	}
	const clients = 500
	ns := netnstest.New(t)
	// A sink that only counts: the test's usual one keeps every line,
	// which would show as heap the connections left behind.
	counts := &closeCounter{details: map[string]int{}}
	ts := newTestServer(t, BackendBuffered, Config{MaxConnectionsPerSession: -1, MaxStartups: -1})
	ts.srv.logger = slog.Make(counts)
	ln, err := ns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ts.srv.Serve(ctx, ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	id := uuid.New()
	dial := func(link string) net.Conn {
		t.Helper()
		c, err := ns.Dial(ctx, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteInit(c, Init{ID: id, Height: 24, Width: 80, Command: "cat", BackendType: "buffered", Link: link}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The session first, so that its own memory is in the baseline.
	first := dial("")
	waitConns(t, ts.srv, 1, shortWait)
	wave := func(name string) []net.Conn {
		var cs []net.Conn
		for i := 1; i < clients; i++ {
			link := ""
			if i%2 == 1 {
				link = "halfopen-" + name + "-" + strconv.Itoa(100000+i)
			}
			cs = append(cs, dial(link))
		}
		return cs
	}
	// A first wave attaches and leaves cleanly, so that what the server
	// keeps at its peak (Go maps never shrink; the runtime keeps its
	// goroutine records) is in the baseline, and what the measured wave
	// leaves is what it should not.
	for _, c := range wave("warmup") {
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.Close()
	}
	waitConns(t, ts.srv, 1, shortWait)
	baseHeap := heap()

	conns := append([]net.Conn{first}, wave("measured")...)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})

	waitConns(t, ts.srv, clients, shortWait)
	loaded := heap()

	blocked := time.Now()
	if err := ns.Block(ln.Addr().(*net.TCPAddr).Port); err != nil {
		t.Fatal(err)
	}
	waitConns(t, ts.srv, 0, 20*time.Second)
	took := time.Since(blocked)
	// The test's own ends of the connections go too (their packets are
	// dropped), so that what is left on the heap is the server's.
	for _, c := range conns {
		_ = c.Close()
	}
	conns = nil
	after := heap()
	t.Logf("%d half-open connections closed %s after the silence began; heap (live objects) %d KiB before them, %d with them, %d after",
		clients, took.Round(100*time.Millisecond), baseHeap>>10, loaded>>10, after>>10)
	if took > 15*time.Second {
		t.Errorf("the last half-open connection was closed after %s, want within 15 s", took)
	}
	// Within 256 bytes a connection of the baseline: the session keeps the
	// link IDs it saw (at most 256, about 100 bytes each).
	if after > baseHeap+clients*256 {
		t.Errorf("heap %d KiB after the closes, want within %d KiB of the %d KiB before the connections (%d with them)", after>>10, clients*256>>10, baseHeap>>10, loaded>>10)
	}
	got := counts.snapshot()
	t.Logf("closes by reason and detail: %v", got)
	if got["network_error: heartbeat timeout"] != clients/2 {
		t.Errorf("%d heartbeat timeouts, want the %d link connections'", got["network_error: heartbeat timeout"], clients/2)
	}
	if n := got["network_error: keepalive timeout"] + got["network_error: write output"]; n != clients/2 {
		t.Errorf("%d closes by the kernel's keepalive or TCP_USER_TIMEOUT, want the %d other connections'", n, clients/2)
	}
}

// closeCounter counts the close lines by reason and the start of their
// detail, keeping nothing else.
type closeCounter struct {
	mu      sync.Mutex
	details map[string]int
}

func (c *closeCounter) LogEntry(_ context.Context, e slog.SinkEntry) {
	if e.Message != "reconnecting pty closed" {
		return
	}
	var reason, detail string
	for _, f := range e.Fields {
		switch f.Name {
		case "disconnect_reason":
			reason, _ = f.Value.(string)
		case "disconnect_detail":
			detail, _ = f.Value.(string)
		}
	}
	detail, _, _ = strings.Cut(detail, ":")
	c.mu.Lock()
	c.details[reason+": "+detail]++
	c.mu.Unlock()
}

func (*closeCounter) Sync() {}

func (c *closeCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.details)
}

// waitConns waits until the server counts n connections.
func waitConns(t *testing.T, srv *Server, n int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for srv.ConnCount() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections after %s, want %d", srv.ConnCount(), d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
