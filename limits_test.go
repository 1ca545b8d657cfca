package reconnectingpty

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// dialTCP opens a loopback connection to addr.
func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// requireRefusedAtOnce dials addr and asserts that the server ends the
// connection within a second, without a byte of output. The reset may
// beat the dial itself, when the server accepts before the dialler runs.
func requireRefusedAtOnce(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return
		}
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("connection not refused at once: read %d bytes, %v", n, err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// requireLimitClose asserts that a close line names the limit.
func requireLimitClose(t *testing.T, ts *testServer, limit, detail string) {
	t.Helper()
	deadline := time.Now().Add(shortWait)
	for {
		for _, c := range closesWithReason(ts.logs.closes(), DisconnectLimitExceeded) {
			if strings.Contains(c["disconnect_detail"].(string), detail) {
				requireClose(t, c, DisconnectLimitExceeded)
				if got := testutil.ToFloat64(ts.srv.metrics.limits.WithLabelValues(limit)); got < 1 {
					t.Fatalf("limit_hits_total{limit=%q} = %v", limit, got)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no limit_exceeded close naming %q: %v", detail, ts.logs.closes())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitConnCount(t *testing.T, srv *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(shortWait)
	for srv.ConnCount() != n {
		if time.Now().After(deadline) {
			t.Fatalf("ConnCount = %d, want %d", srv.ConnCount(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMaxStartupsRefusesTheExcessAtOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{MaxStartups: 2, InitTimeout: time.Minute})
	addr, stop := serveLoopback(t, ts.srv)
	defer stop()
	idle := []net.Conn{dialTCP(t, addr), dialTCP(t, addr)}
	waitConnCount(t, ts.srv, 2)
	requireRefusedAtOnce(t, addr)
	requireLimitClose(t, ts, limitStartups, "MaxStartups")

	// Once a waiting connection sends its init, there is room again.
	if err := WriteInit(idle[0], Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo through; exec sleep 100"}); err != nil {
		t.Fatal(err)
	}
	tc := newTestClient(t, idle[0])
	tc.expect("through")
	late := dialTCP(t, addr)
	if err := WriteInit(late, Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo late; exec sleep 100"}); err != nil {
		t.Fatal(err)
	}
	newTestClient(t, late).expect("late")
}

func TestMaxConnectionsRefusesTheExcess(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{MaxConnections: 2})
	addr, stop := serveLoopback(t, ts.srv)
	defer stop()
	id := uuid.New()
	for _, init := range []Init{{ID: id, Height: 24, Width: 80, Command: "echo conn-a; exec sleep 100"}, {ID: id}} {
		c := dialTCP(t, addr)
		if err := WriteInit(c, init); err != nil {
			t.Fatal(err)
		}
		newTestClient(t, c).expect("conn-a")
	}
	requireRefusedAtOnce(t, addr)
	requireLimitClose(t, ts, limitConnections, "MaxConnections")
}

func TestMaxSessionsRefusesANewSessionOnly(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{MaxSessions: 1})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: "echo only-one; exec sleep 100"})
	a.expect("only-one")
	b := ts.connect(Init{ID: uuid.New(), Command: "echo second"})
	b.expectEOF()
	requireLimitClose(t, ts, limitSessions, "MaxSessions")
	// The live session still takes connections.
	ts.connect(Init{ID: id}).expect("only-one")
}

func TestMaxConnectionsPerSessionRefusesTheExcess(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{MaxConnectionsPerSession: 1})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: "echo per-session; exec sleep 100"})
	a.expect("per-session")
	ts.connect(Init{ID: id}).expectEOF()
	requireLimitClose(t, ts, limitSessionConnections, "MaxConnectionsPerSession")
	ts.connect(Init{ID: uuid.New(), Command: "echo other-session"}).expect("other-session")
}

func TestLimitsAreValidated(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{MaxSessions: -2}, {MaxConnections: -2}, {MaxConnectionsPerSession: -2}, {MaxStartups: -2},
	} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer(%+v) succeeded", cfg)
		}
	}
	srv, err := NewServer(Config{MaxSessions: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.cfg.MaxSessions != -1 || srv.cfg.MaxConnections != 4096 || srv.cfg.MaxConnectionsPerSession != 64 ||
		srv.cfg.MaxStartups != 64 || srv.cfg.InitTimeout != 10*time.Second || srv.cfg.MaxRequestSize != 4<<20 {
		t.Fatalf("limits: %+v", srv.cfg)
	}
}

// requestOfSize is a data request of exactly n bytes.
func requestOfSize(n int) string {
	const frame = `{"data":""}`
	return `{"data":"` + strings.Repeat("x", n-len(frame)) + `"}`
}

// TestRequestSizeLimitIsExact pins that a request of MaxRequestSize bytes
// is taken and one a byte longer is refused.
func TestRequestSizeLimitIsExact(t *testing.T) {
	t.Parallel()
	const limit = 2000
	ts := newTestServer(t, BackendBuffered, Config{MaxRequestSize: limit})
	// The terminal is raw, so a long line is not held up by the line
	// discipline; wc counts what arrives.
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: `stty raw -echo; echo ready; head -c ` + itoa(limit-len(`{"data":""}`)) + ` | wc -c; sleep 100`})
	a.expect("ready")
	if _, err := io.WriteString(a.conn, "  \n"+requestOfSize(limit)+"\n"); err != nil {
		t.Fatal(err)
	}
	a.expect(itoa(limit - len(`{"data":""}`)))

	b := ts.connect(Init{ID: id})
	go func() { _, _ = io.WriteString(b.conn, requestOfSize(limit+1)) }()
	b.expectEOF()
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectProtocolError)
	if d := closes[0]["disconnect_detail"].(string); !strings.Contains(d, "request too large") {
		t.Fatalf("detail %q", d)
	}
	if got := testutil.ToFloat64(ts.srv.metrics.limits.WithLabelValues(limitRequestSize)); got != 1 {
		t.Fatalf("limit_hits_total{limit=request_size} = %v", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
