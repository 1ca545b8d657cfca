package reconnectingpty

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInitArrivingOneByteAtATime(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	client, server := net.Pipe()
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		_ = ts.srv.ServeConn(t.Context(), server)
	}()
	var frame strings.Builder
	if err := WriteInit(writerFunc(func(p []byte) (int, error) { return frame.WriteString(string(p)) }),
		Init{ID: uuid.New(), Height: 24, Width: 80, Command: testShell}); err != nil {
		t.Fatal(err)
	}
	// The first request rides right behind the init: the server must not
	// swallow it while reading the init.
	stream := frame.String() + `{"data":"echo one-\"\"byte\r"}`
	tc := newTestClient(t, client)
	for i := 0; i < len(stream); i++ {
		if _, err := client.Write([]byte{stream[i]}); err != nil {
			t.Fatalf("byte %d: %v; closes: %v", i, err, ts.logs.closes())
		}
	}
	tc.expect("one-byte")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func rawInit(body string) []byte {
	b := make([]byte, 2, 2+len(body))
	binary.LittleEndian.PutUint16(b, uint16(len(body)))
	return append(b, body...)
}

func TestBadInitIsAttributedAndCostsNothingElse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		send   []byte
		hangUp bool // close the client side after sending
		detail string
	}{
		{"ZeroLength", []byte{0, 0}, false, "length is zero"},
		{"NotJSON", rawInit("not json"), false, "decode init"},
		{"MissingID", rawInit(`{"Height":24,"Width":80}`), false, "nil ID"},
		{"NilID", rawInit(`{"ID":"00000000-0000-0000-0000-000000000000"}`), false, "nil ID"},
		{"BadUUID", rawInit(`{"ID":"not-a-uuid"}`), false, "decode init"},
		{"UnknownBackend", rawInit(`{"ID":"` + uuid.NewString() + `","BackendType":"tmux"}`), false, "unknown backend type"},
		{"NegativeOffset", rawInit(`{"ID":"` + uuid.NewString() + `","Resume":true,"Offset":-1}`), false, "not an unsigned integer"},
		{"FractionalOffset", rawInit(`{"ID":"` + uuid.NewString() + `","Resume":true,"Offset":1.5}`), false, "not an unsigned integer"},
		{"StringOffset", rawInit(`{"ID":"` + uuid.NewString() + `","Resume":true,"Offset":"12"}`), false, "not an unsigned integer"},
		{"HugeOffset", rawInit(`{"ID":"` + uuid.NewString() + `","Resume":true,"Offset":18446744073709551616}`), false, "not an unsigned integer"},
		{"NonBoolResume", rawInit(`{"ID":"` + uuid.NewString() + `","Resume":"yes"}`), false, "decode init"},
		{"TruncatedLength", []byte{5}, true, "truncated after 1 of 2 bytes"},
		{"TruncatedBody", rawInit(`{"ID":"` + uuid.NewString() + `"}`)[:10], true, "truncated after 8 of"},
		{"NothingThenTimeout", nil, false, "init timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, BackendBuffered, Config{InitTimeout: 200 * time.Millisecond})
			client, server := net.Pipe()
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				_ = ts.srv.ServeConn(t.Context(), server)
			}()
			bad := newTestClient(t, client)
			if len(tc.send) > 0 {
				if _, err := client.Write(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			if tc.hangUp {
				_ = client.Close()
			}
			bad.expectEOF()
			closes := ts.waitForCloses(1)
			requireClose(t, closes[0], DisconnectProtocolError)
			if d := closes[0]["disconnect_detail"].(string); !strings.Contains(d, tc.detail) {
				t.Fatalf("detail %q does not say %q", d, tc.detail)
			}
			if got := testutil.ToFloat64(ts.srv.metrics.errors.WithLabelValues(errorTypeInit)); got != 1 {
				t.Fatalf("init errors = %v, want 1", got)
			}
			// The server still serves.
			good := ts.connect(Init{ID: uuid.New(), Command: testShell})
			good.typeLine(`echo still-""serving`)
			good.expect("still-serving")
		})
	}
}

func TestMalformedRequestEndsOnlyThatConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, request string }{
		{"NotJSON", `{"data": oops}`},
		{"WrongType", `{"data": 42}`},
		{"TruncatedThenClose", `{"data": "ec`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, BackendBuffered, Config{})
			id := uuid.New()
			good := ts.connect(Init{ID: id, Command: testShell})
			good.typeLine(`echo first-""line`)
			good.expect("first-line")

			bad := ts.connect(Init{ID: id})
			bad.expect("first-line") // attached and replayed
			if _, err := io.WriteString(bad.conn, tc.request); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.name, "Truncated") {
				_ = bad.conn.Close()
			}
			bad.expectEOF()
			requireClose(t, ts.waitForCloses(1)[0], DisconnectProtocolError)

			good.typeLine(`echo after-""bad`)
			good.expect("after-bad")
		})
	}
}

func TestOversizedRequestIsAProtocolError(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{MaxRequestSize: 1024})
	bad := ts.connect(Init{ID: uuid.New(), Command: testShell})
	go func() {
		// An unterminated string far past the limit; the write fails once
		// the server hangs up.
		_, _ = io.WriteString(bad.conn, `{"data":"`+strings.Repeat("x", 64<<10))
	}()
	bad.expectEOF()
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectProtocolError)
	if d := closes[0]["disconnect_detail"].(string); !strings.Contains(d, "request too large") {
		t.Fatalf("detail %q", d)
	}
}

type failingCommander struct{}

func (failingCommander) Command(context.Context, CommandRequest) (*exec.Cmd, error) {
	return nil, errors.New("no such user")
}

func TestStartFailureIsAttributed(t *testing.T) {
	t.Parallel()
	t.Run("CommanderFails", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, BackendBuffered, Config{Commander: failingCommander{}})
		c := ts.connect(Init{ID: uuid.New()})
		c.expectEOF()
		closes := ts.waitForCloses(1)
		requireClose(t, closes[0], DisconnectStartFailed)
		if !strings.Contains(closes[0]["disconnect_detail"].(string), "no such user") {
			t.Fatalf("detail %v", closes[0]["disconnect_detail"])
		}
		if got := ts.reports.snapshot(); len(got) != 1 || got[0] != "1 start_failed" {
			t.Fatalf("report hook saw %v", got)
		}
	})
	t.Run("ContainerWithLocalCommander", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, BackendBuffered, Config{Commander: LocalCommander{}})
		c := ts.connect(Init{ID: uuid.New(), Container: "web"})
		c.expectEOF()
		closes := ts.waitForCloses(1)
		requireClose(t, closes[0], DisconnectStartFailed)
		if !strings.Contains(closes[0]["disconnect_detail"].(string), "container") {
			t.Fatalf("detail %v", closes[0]["disconnect_detail"])
		}
	})
}

func TestReportHookAgreesWithTheLog(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	a.typeLine(`echo hi-""there`)
	a.expect("hi-there")
	a.close()
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectGraceful)
	ts.reports.mu.Lock()
	opened := append([]uuid.UUID(nil), ts.reports.opened...)
	ts.reports.mu.Unlock()
	if len(opened) != 1 || opened[0] != id {
		t.Fatalf("hook opened %v, want [%s]", opened, id)
	}
	if got := ts.reports.snapshot(); len(got) != 1 || got[0] != "0 graceful" {
		t.Fatalf("hook saw %v, want [0 graceful]", got)
	}
}

func TestMetricsCountWhatHappened(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	a.typeLine(`echo metric-""check`)
	a.expect("metric-check")
	b := ts.connect(Init{ID: id})
	b.expect("metric-check")
	b.close()
	ts.waitForCloses(1)

	m := ts.srv.metrics
	for name, want := range map[string]float64{
		"connections_total":  2,
		"connections_active": 1,
		"sessions_active":    1,
		"graceful":           1,
	} {
		var got float64
		switch name {
		case "connections_total":
			got = testutil.ToFloat64(m.connections)
		case "connections_active":
			got = testutil.ToFloat64(m.connectionsActive)
		case "sessions_active":
			got = testutil.ToFloat64(m.sessionsActive)
		case "graceful":
			got = testutil.ToFloat64(m.disconnects.WithLabelValues(string(DisconnectGraceful)))
		}
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := testutil.ToFloat64(m.outputBytes); got < float64(len("metric-check")) {
		t.Errorf("output_bytes_total = %v", got)
	}
	if got := testutil.ToFloat64(m.replayBytes); got < float64(len("metric-check")) {
		t.Errorf("replay_bytes_total = %v", got)
	}
	// The names follow Prometheus conventions under the chosen namespace.
	n, err := testutil.GatherAndCount(ts.reg,
		"rpty_connections_total", "rpty_connections_active", "rpty_sessions_active",
		"rpty_disconnects_total", "rpty_output_bytes_total", "rpty_replay_bytes_total")
	if err != nil || n != 6 {
		t.Fatalf("gathered %d series (%v), want 6", n, err)
	}
}

func TestConfigIsValidated(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{SizePolicy: "tallest"},
		{BufferSize: -1},
		{Backend: "tmux"},
		{BufferSize: 1 << 20, ConnQueueSize: 1 << 10},
		{InitTimeout: -time.Second},
	} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer(%+v) succeeded", cfg)
		}
	}
	srv, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.cfg.Timeout != 5*time.Minute || srv.cfg.BufferSize != 64<<10 || srv.cfg.Backend != BackendAuto || srv.cfg.SizePolicy != SizeLatest {
		t.Fatalf("defaults not applied: %+v", srv.cfg)
	}
	// A negative timeout is valid: it keeps sessions forever.
	forever, err := NewServer(Config{Timeout: -1})
	if err != nil {
		t.Fatalf("NewServer with a negative timeout: %v", err)
	}
	defer forever.Close()
}

// TestServeOverTCP runs the server as an agent would: a TCP listener,
// clients that hang up, a shutdown through the context.
func TestServeOverTCP(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, serveErr := serveTCP(t, ts.srv, ctx, context.Background())

	dial := func(init Init) *testClient {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteInit(c, init); err != nil {
			t.Fatal(err)
		}
		return newTestClient(t, c)
	}
	id := uuid.New()
	a := dial(Init{ID: id, Height: 24, Width: 80, Command: testShell})
	a.typeLine(`echo over-""tcp`)
	a.expect("over-tcp")
	a.close()
	requireClose(t, ts.waitForCloses(1)[0], DisconnectGraceful)

	b := dial(Init{ID: id})
	b.expect("over-tcp")
	if ts.srv.ConnCount() != 1 {
		t.Fatalf("ConnCount = %d, want 1", ts.srv.ConnCount())
	}
	// Output written just before the shutdown still reaches the client.
	b.typeLine(`echo last-""words; sleep 0.2`)
	b.expect("last-words")
	cancel()
	if err := <-serveErr; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	b.expectEOF()
	requireClose(t, ts.waitForCloses(2)[1], DisconnectServerShutdown)
	ts.requireNoProcesses()
	if ts.srv.ConnCount() != 0 {
		t.Fatalf("ConnCount after Serve = %d", ts.srv.ConnCount())
	}
}

// TestHardShutdownClosesClientsThatDoNotRead pins that hardCtx bounds a
// shutdown even when a client never reads what is owed to it.
func TestHardShutdownClosesClientsThatDoNotRead(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	hardCtx, hardCancel := context.WithCancel(context.Background())
	addr, serveErr := serveTCP(t, ts.srv, ctx, hardCtx)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := WriteInit(c, Init{ID: uuid.New(), Height: 24, Width: 80, Command: "yes stalled-client"}); err != nil {
		t.Fatal(err)
	}
	// Read a little so the session surely runs, then stop reading until
	// the output stalls: the socket buffers and the connection's queue
	// are full and the process is paced.
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(shortWait)
	for last, still := -1.0, 0; still < 2; {
		time.Sleep(200 * time.Millisecond)
		cur := testutil.ToFloat64(ts.srv.metrics.outputBytes)
		if cur == last && cur >= float64(ts.srv.cfg.ConnQueueSize/4) {
			still++
		} else {
			still = 0
		}
		if time.Now().After(deadline) {
			t.Fatal("output never stalled")
		}
		last = cur
	}
	cancel()
	// The graceful shutdown owes the client output it will never read.
	select {
	case err := <-serveErr:
		t.Fatalf("Serve returned (%v) before hardCtx, with output undelivered", err)
	case <-time.After(300 * time.Millisecond):
	}
	hardCancel()
	if err := <-serveErr; err != nil {
		t.Fatal(err)
	}
	requireClose(t, ts.waitForCloses(1)[0], DisconnectServerShutdown)
	hardCancel()
	ts.requireNoProcesses()
	if ts.srv.ConnCount() != 0 {
		t.Fatalf("ConnCount = %d", ts.srv.ConnCount())
	}
}

func TestServeConnContextCancelDetachesOnly(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	id := uuid.New()
	ctx, cancel := context.WithCancel(context.Background())
	client, server := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = ts.srv.ServeConn(ctx, server)
	}()
	if err := WriteInit(client, Init{ID: id, Height: 24, Width: 80, Command: testShell}); err != nil {
		t.Fatal(err)
	}
	a := newTestClient(t, client)
	a.typeLine(`echo ctx-""cancel`)
	a.expect("ctx-cancel")
	cancel()
	a.expectEOF()
	wg.Wait()
	requireClose(t, ts.waitForCloses(1)[0], DisconnectServerShutdown)
	b := ts.connect(Init{ID: id})
	b.expect("ctx-cancel")
}

// TestOnlyTheSessionEndingLooksLikeEOF pins what clients rely on to tell
// a session's end from a dropped connection: a clean EOF only for the end;
// a connection cut off for another reason is reset.
func TestOnlyTheSessionEndingLooksLikeEOF(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{
		BufferSize: 16 << 10, ConnQueueSize: 64 << 10, SlowConsumerTimeout: 100 * time.Millisecond,
	})
	addr, stop := serveLoopback(t, ts.srv)
	defer stop()

	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if err := WriteInit(stalled, Init{ID: uuid.New(), Height: 24, Width: 80, Command: "yes slow-consumer"}); err != nil {
		t.Fatal(err)
	}
	// Not reading: the server cuts the connection off.
	requireClose(t, ts.waitForCloses(1)[0], DisconnectSlowConsumer)
	if _, err := io.Copy(io.Discard, stalled); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("cut-off connection ended with %v, want a reset", err)
	}

	ended, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ended.Close()
	if err := WriteInit(ended, Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo the-end"}); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(ended)
	if err != nil || !strings.Contains(string(out), "the-end") {
		t.Fatalf("ended session: %q, %v; want its output, then EOF", out, err)
	}
}

// TestAttachingWhileTheProcessExitsNeverHangs attaches connections all
// around the moment a session's process exits: each must end with EOF,
// whether it joined the dying session or started the next one.
func TestAttachingWhileTheProcessExitsNeverHangs(t *testing.T) {
	t.Parallel()
	for _, backend := range backendsUnderTest(t) {
		t.Run(string(backend), func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, backend, Config{})
			id := uuid.New()
			init := Init{ID: id, Command: "echo bye; sleep 0.3"}
			var clients []*testClient
			for i := 0; i < 15; i++ {
				clients = append(clients, ts.connect(init))
				time.Sleep(40 * time.Millisecond)
			}
			for _, c := range clients {
				c.expectEOF()
			}
			for _, c := range ts.waitForCloses(len(clients)) {
				if r := c["disconnect_reason"]; r != string(DisconnectProcessExited) {
					t.Errorf("close attributed to %v, want process_exited (%v)", r, c["disconnect_detail"])
				}
			}
		})
	}
}

// TestSessionStartAndEndAreLogged: an operator sees a line when a session
// starts (backend, size, the process's PID) and one when it ends.
func TestSessionStartAndEndAreLogged(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendVT, Config{})
	a := ts.connect(Init{ID: uuid.New(), Command: "echo logged-start; exit 0", Height: 30, Width: 90})
	a.expectEOF()
	ts.waitForCloses(1)
	started := ts.logs.lines("reconnecting pty session started")
	if len(started) != 1 {
		t.Fatalf("%d session started lines, want 1", len(started))
	}
	f := started[0]
	if f["backend"] != "vt" || f["height"] != uint16(30) || f["width"] != uint16(90) {
		t.Fatalf("session started line %v: want backend vt, 30x90", f)
	}
	if pid, ok := f["pid"].(int); !ok || pid <= 1 {
		t.Fatalf("session started line has pid %v", f["pid"])
	}
	deadline := time.Now().Add(shortWait)
	for len(ts.logs.lines("reconnecting pty session ended")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no session ended line")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
