package reconnectingpty

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconnectingpty/reconnectingpty/internal/leakcheck"
)

// TestMain fails the run if any test left a goroutine or a child process.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := leakcheck.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
		if kids := childProcesses(); len(kids) > 0 {
			fmt.Fprintln(os.Stderr, "child processes left behind:", kids)
			code = 1
		}
	}
	os.Exit(code)
}

// childProcesses lists this process's children, reaped or not.
func childProcesses() []string {
	var kids []string
	self := strconv.Itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 && f[1] == self {
			kids = append(kids, string(stat[:i+1]))
		}
	}
	return kids
}

// shortWait and longWait bound how long a test polls for output; they are
// deadlines for failure, not delays.
const (
	shortWait = 20 * time.Second
	longWait  = 40 * time.Second
)

// testShell runs without rc files so prompts and output are predictable.
const testShell = "bash --norc --noprofile"

// logSink keeps every entry so tests can assert on attribution.
type logSink struct {
	mu      sync.Mutex
	entries []slog.SinkEntry
}

func (s *logSink) LogEntry(_ context.Context, e slog.SinkEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
}

func (*logSink) Sync() {}

// closes returns the fields of every "reconnecting pty closed" line.
func (s *logSink) closes() []map[string]any { return s.lines("reconnecting pty closed") }

// lines returns the fields of every line with the message msg.
func (s *logSink) lines(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, e := range s.entries {
		if e.Message != msg {
			continue
		}
		m := map[string]any{}
		for _, f := range e.Fields {
			m[f.Name] = f.Value
		}
		out = append(out, m)
	}
	return out
}

// markedCommander runs LocalCommander with a marker in the environment, so
// a test can find every process a session started, however it detached.
type markedCommander struct {
	marker string
	env    []string
}

func (mc markedCommander) Command(ctx context.Context, req CommandRequest) (*exec.Cmd, error) {
	cmd, err := LocalCommander{Shell: "/bin/bash", Dir: os.TempDir()}.Command(ctx, req)
	if err != nil {
		return nil, err
	}
	env := mc.env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(append([]string{}, env...), "RPTY_TEST_MARK="+mc.marker)
	return cmd, nil
}

// markedProcesses lists the PIDs whose environment carries marker.
func markedProcesses(marker string) []int {
	var pids []int
	needle := []byte("RPTY_TEST_MARK=" + marker + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(env, needle) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		pids = append(pids, pid)
	}
	return pids
}

type testServer struct {
	t       *testing.T
	srv     *Server
	logs    *logSink
	reg     *prometheus.Registry
	marker  string
	backend BackendType
	reports *reportLog

	wg sync.WaitGroup // ServeConn calls
}

// reportLog records what the connection-report hook saw.
type reportLog struct {
	mu      sync.Mutex
	opened  []uuid.UUID
	results []string // "code reason"
}

func (r *reportLog) hook(id uuid.UUID, _ string) func(int, string) {
	r.mu.Lock()
	r.opened = append(r.opened, id)
	r.mu.Unlock()
	return func(code int, reason string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.results = append(r.results, strconv.Itoa(code)+" "+reason)
	}
}

func (r *reportLog) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.results...)
}

func randomMarker() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newTestServer starts a Server for the test; its cleanup closes it and
// fails the test if any process a session started is still alive.
func newTestServer(t *testing.T, backend BackendType, cfg Config) *testServer {
	t.Helper()
	ts := &testServer{t: t, logs: &logSink{}, reg: prometheus.NewRegistry(), marker: randomMarker(), backend: backend, reports: &reportLog{}}
	if cfg.Commander == nil {
		cfg.Commander = markedCommander{marker: ts.marker}
	}
	cfg.Logger = slog.Make(ts.logs).Leveled(slog.LevelDebug)
	if cfg.Backend == "" {
		cfg.Backend = backend
	}
	if cfg.ReportConnection == nil {
		cfg.ReportConnection = ts.reports.hook
	}
	m, err := NewMetrics(ts.reg, "rpty")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = m
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	t.Cleanup(ts.close)
	return ts
}

func (ts *testServer) close() {
	ts.t.Helper()
	_ = ts.srv.Close()
	ts.wg.Wait()
	ts.requireNoProcesses()
}

// requireNoProcesses fails unless every process of every session is gone.
// Killed processes may take a moment to be reaped by init.
func (ts *testServer) requireNoProcesses() {
	ts.t.Helper()
	deadline := time.Now().Add(shortWait)
	for {
		pids := markedProcesses(ts.marker)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.t.Errorf("processes left behind: %v", pids)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connect opens a net.Pipe connection served by ServeConn and sends init.
func (ts *testServer) connect(init Init) *testClient {
	ts.t.Helper()
	client, server := net.Pipe()
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		_ = ts.srv.ServeConn(context.Background(), server)
	}()
	if init.Height == 0 {
		init.Height, init.Width = 24, 80
	}
	if init.BackendType == "" {
		init.BackendType = string(ts.backend)
	}
	if err := WriteInit(client, init); err != nil {
		ts.t.Fatal(err)
	}
	return newTestClient(ts.t, client)
}

// testClient reads everything the server sends into a buffer, in the
// background, so the server is never held up by the test.
type testClient struct {
	t    *testing.T
	conn net.Conn

	mu      sync.Mutex
	out     bytes.Buffer
	eof     bool
	changed chan struct{}
	done    chan struct{}
}

func newTestClient(t *testing.T, c net.Conn) *testClient {
	tc := &testClient{t: t, conn: c, changed: make(chan struct{}, 1), done: make(chan struct{})}
	go tc.read()
	t.Cleanup(tc.close)
	return tc
}

func (tc *testClient) read() {
	defer close(tc.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := tc.conn.Read(buf)
		tc.mu.Lock()
		tc.out.Write(buf[:n])
		if err != nil {
			tc.eof = true
		}
		tc.mu.Unlock()
		select {
		case tc.changed <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// close hangs up. On TCP it half-closes first and lets the server end the
// connection: closing a socket with unread output in it resets it, which
// the server rightly cannot tell from a network failure.
func (tc *testClient) close() {
	if cw, ok := tc.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		select {
		case <-tc.done:
		case <-time.After(shortWait):
		}
	}
	_ = tc.conn.Close()
	<-tc.done
}

func (tc *testClient) output() string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.out.String()
}

// waitFor polls until cond holds on the output so far or the deadline passes.
func (tc *testClient) waitFor(what string, d time.Duration, cond func(out string, eof bool) bool) string {
	tc.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		tc.mu.Lock()
		out, eof := tc.out.String(), tc.eof
		tc.mu.Unlock()
		if cond(out, eof) {
			return out
		}
		if eof {
			tc.t.Fatalf("EOF while waiting for %s; output:\n%q", what, tail(out))
		}
		select {
		case <-tc.changed:
		case <-timer.C:
			tc.t.Fatalf("timed out waiting for %s; output:\n%q", what, tail(out))
		}
	}
}

// waitUntil repeats act every 200 ms until cond holds on the output.
func (tc *testClient) waitUntil(what string, d time.Duration, act func(), cond func(out string) bool) {
	tc.t.Helper()
	deadline := time.Now().Add(d)
	for {
		act()
		retry := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(retry) {
			if cond(tc.output()) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("timed out waiting for %s; output:\n%q", what, tail(tc.output()))
		}
	}
}

func (tc *testClient) expect(substr string) string {
	tc.t.Helper()
	return tc.waitFor(strconv.Quote(substr), shortWait, func(out string, _ bool) bool {
		return strings.Contains(out, substr)
	})
}

// expectEOF waits for the server to end the output stream.
func (tc *testClient) expectEOF() string {
	tc.t.Helper()
	timer := time.NewTimer(shortWait)
	defer timer.Stop()
	select {
	case <-tc.done:
	case <-timer.C:
		tc.t.Fatalf("no EOF; output:\n%q", tail(tc.output()))
	}
	return tc.output()
}

func (tc *testClient) send(req Request) {
	tc.t.Helper()
	if err := WriteRequest(tc.conn, req); err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *testClient) typeLine(line string) {
	tc.t.Helper()
	tc.send(Request{Data: line + "\r"})
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// waitForClose polls the logs until n connections have logged their close.
func (ts *testServer) waitForCloses(n int) []map[string]any {
	ts.t.Helper()
	deadline := time.Now().Add(shortWait)
	for {
		closes := ts.logs.closes()
		if len(closes) >= n {
			return closes
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("want %d close lines, got %d: %v", n, len(closes), closes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireClose asserts one close line has the given reason and the fields
// that reason implies.
func requireClose(t *testing.T, fields map[string]any, reason DisconnectReason) {
	t.Helper()
	if fields["disconnect_reason"] != string(reason) {
		t.Fatalf("disconnect_reason = %v, want %s (fields %v)", fields["disconnect_reason"], reason, fields)
	}
	if fields["connect_type"] != ConnectTypeAgentToClient {
		t.Fatalf("connect_type = %v", fields["connect_type"])
	}
	if fields["disconnect_expected"] != reason.Expected() {
		t.Fatalf("disconnect_expected = %v for %s", fields["disconnect_expected"], reason)
	}
	if fields["disconnect_initiator"] != string(reason.Initiator()) {
		t.Fatalf("disconnect_initiator = %v for %s", fields["disconnect_initiator"], reason)
	}
	if _, ok := fields["exit_code"]; !ok {
		t.Fatalf("no exit_code in %v", fields)
	}
}

// closesWithReason filters close lines by reason.
func closesWithReason(closes []map[string]any, reason DisconnectReason) []map[string]any {
	var out []map[string]any
	for _, c := range closes {
		if c["disconnect_reason"] == string(reason) {
			out = append(out, c)
		}
	}
	return out
}

// serveTCP serves srv on a loopback TCP port; Serve's result arrives on
// the channel.
func serveTCP(tb testing.TB, srv *Server, ctx, hardCtx context.Context) (addr string, served <-chan error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, hardCtx, ln) }()
	return ln.Addr().String(), done
}

// serveLoopback serves srv on a loopback TCP port until stop is called.
func serveLoopback(tb testing.TB, srv *Server) (addr string, stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr, served := serveTCP(tb, srv, ctx, ctx)
	return addr, func() {
		cancel()
		if err := <-served; err != nil {
			tb.Error(err)
		}
	}
}
