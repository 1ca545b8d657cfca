package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cdr.dev/slog/v3"
	"cdr.dev/slog/v3/sloggers/slogtest"
	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconnectingpty/reconnectingpty"
)

// testShell avoids rc files, so prompts and output are predictable.
const testShell = "bash --norc --noprofile"

// testDaemon runs the rptyd HTTP handler on loopback against a server with
// the buffered backend, and tracks the connections the handler hijacked for
// WebSockets so that a test can cut them from the server side.
type testDaemon struct {
	t    *testing.T
	srv  *reconnectingpty.Server
	base string // http://127.0.0.1:port/

	// oldBridge makes the bridge drop the page's resume and offset,
	// as a bridge or server without the resume extension does.
	oldBridge atomic.Bool

	mu       sync.Mutex
	closing  bool
	hijacked map[net.Conn]struct{}
	handlers sync.WaitGroup // requests in the handler; Add under mu
}

// newTestDaemon starts the daemon; configure may adjust the server's
// config.
func newTestDaemon(t *testing.T, configure ...func(*reconnectingpty.Config)) *testDaemon {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newTestDaemonOn(t, l, configure...)
}

// newTestDaemonOn is newTestDaemon serving on l.
func newTestDaemonOn(t *testing.T, l net.Listener, configure ...func(*reconnectingpty.Config)) *testDaemon {
	t.Helper()
	logger := slogtest.Make(t, &slogtest.Options{IgnoreErrors: true}).Leveled(slog.LevelDebug)
	reg := prometheus.NewRegistry()
	metrics, err := reconnectingpty.NewMetrics(reg, "rptyd")
	if err != nil {
		t.Fatal(err)
	}
	cfg := reconnectingpty.Config{
		Logger:    logger,
		Metrics:   metrics,
		Backend:   reconnectingpty.BackendBuffered,
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
	}
	for _, f := range configure {
		f(&cfg)
	}
	srv, err := reconnectingpty.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDaemon{t: t, srv: srv, hijacked: map[net.Conn]struct{}{}}
	// Guarded as rptyd guards it (main.go), so that the pages under test
	// meet the same checks.
	h := newHostGuard(newHTTPHandler(srv, reg, logger), l.Addr().String(), nil)
	d.base = "http://" + l.Addr().String() + "/"
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Counting under mu, against closing, keeps Add from
			// racing the Wait in the cleanup.
			d.mu.Lock()
			if d.closing {
				d.mu.Unlock()
				http.Error(w, "shutting down", http.StatusServiceUnavailable)
				return
			}
			d.handlers.Add(1)
			d.mu.Unlock()
			defer d.handlers.Done()
			if d.oldBridge.Load() {
				q := r.URL.Query()
				q.Del("resume")
				q.Del("offset")
				q.Del("link")
				q.Del("input")
				r.URL.RawQuery = q.Encode()
			}
			h.ServeHTTP(w, r)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateHijacked {
				d.mu.Lock()
				d.hijacked[c] = struct{}{}
				d.mu.Unlock()
			}
		},
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()

	t.Cleanup(func() {
		d.mu.Lock()
		d.closing = true
		d.mu.Unlock()
		// Closing the server kills the sessions and ends every
		// connection, which returns the bridges' ServeConn calls.
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		if err := hs.Close(); err != nil {
			t.Errorf("close http server: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve http: %v", err)
		}
		d.cut()
		d.handlers.Wait()
	})
	return d
}

// cut closes every hijacked (WebSocket) connection at the TCP level, as a
// network failure or a restarted proxy would, and reports how many.
func (d *testDaemon) cut() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.hijacked)
	for c := range d.hijacked {
		_ = c.Close()
	}
	clear(d.hijacked)
	return n
}

// wsURL is the bridge's URL for the query q.
func (d *testDaemon) wsURL(q url.Values) string {
	return "ws" + strings.TrimPrefix(d.base, "http") + "ws?" + q.Encode()
}

func sessionQuery(id uuid.UUID, height, width string) url.Values {
	q := url.Values{"reconnect": {id.String()}, "command": {testShell}}
	if height != "" {
		q.Set("height", height)
		q.Set("width", width)
	}
	return q
}

// wsClient is a test's WebSocket to the bridge: a goroutine collects the
// output until the connection closes.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn

	mu     sync.Mutex
	out    bytes.Buffer
	err    error // why reading stopped
	update chan struct{}
	done   chan struct{}
}

func dialBridge(ctx context.Context, t *testing.T, d *testDaemon, q url.Values) *wsClient {
	t.Helper()
	conn, resp, err := websocket.Dial(ctx, d.wsURL(q), nil)
	if err != nil {
		t.Fatalf("dial bridge: %v", err)
	}
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	// One output message can be as large as the replay.
	conn.SetReadLimit(-1)
	c := &wsClient{t: t, conn: conn, update: make(chan struct{}, 1), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() {
		_ = conn.CloseNow()
		<-c.done
	})
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		typ, p, err := c.conn.Read(context.Background())
		c.mu.Lock()
		if err != nil {
			c.err = err
		} else if typ != websocket.MessageBinary {
			c.err = errors.New("output arrived as a text message")
		} else {
			c.out.Write(p)
		}
		stop := c.err != nil
		c.mu.Unlock()
		select {
		case c.update <- struct{}{}:
		default:
		}
		if stop {
			return
		}
	}
}

func (c *wsClient) send(ctx context.Context, req reconnectingpty.Request) {
	c.t.Helper()
	var buf bytes.Buffer
	if err := reconnectingpty.WriteRequest(&buf, req); err != nil {
		c.t.Fatal(err)
	}
	if err := c.conn.Write(ctx, websocket.MessageBinary, buf.Bytes()); err != nil {
		c.t.Fatalf("send %+v: %v", req, err)
	}
}

// waitOutput waits until the output holds want, and returns the output.
func (c *wsClient) waitOutput(ctx context.Context, want string) string {
	c.t.Helper()
	for {
		c.mu.Lock()
		out, err := c.out.String(), c.err
		c.mu.Unlock()
		if strings.Contains(out, want) {
			return out
		}
		if err != nil {
			c.t.Fatalf("connection ended (%v) before output %q; got:\n%s", err, want, out)
		}
		select {
		case <-c.update:
		case <-ctx.Done():
			c.t.Fatalf("no output %q before the deadline; got:\n%s", want, out)
		}
	}
}

// waitOutputOrEnd waits until the output holds want, reporting true, or
// the connection ends first, reporting false.
func (c *wsClient) waitOutputOrEnd(ctx context.Context, want string) bool {
	c.t.Helper()
	for {
		c.mu.Lock()
		found, ended := strings.Contains(c.out.String(), want), c.err != nil
		c.mu.Unlock()
		if found || ended {
			return found
		}
		select {
		case <-c.update:
		case <-ctx.Done():
			c.t.Fatalf("neither output %q nor an end before the deadline", want)
		}
	}
}

// waitClosed waits until the connection has ended and returns why.
func (c *wsClient) waitClosed(ctx context.Context) error {
	c.t.Helper()
	select {
	case <-c.done:
	case <-ctx.Done():
		c.t.Fatal("connection still open at the deadline")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func TestWebSocketRejectsBadQuery(t *testing.T) {
	t.Parallel()
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{Backend: reconnectingpty.BackendBuffered})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	h := newHTTPHandler(srv, prometheus.NewRegistry(), slog.Make())

	id := uuid.NewString()
	for _, tc := range []struct {
		name  string
		query string
		want  string
	}{
		{"no reconnect", "", "missing reconnect parameter"},
		{"empty reconnect", "reconnect=", "missing reconnect parameter"},
		{"bad uuid", "reconnect=not-a-uuid", `invalid reconnect parameter "not-a-uuid"`},
		{"nil uuid", "reconnect=00000000-0000-0000-0000-000000000000", "non-nil session UUID"},
		{"height alone", "reconnect=" + id + "&height=24", "height and width go together"},
		{"width alone", "reconnect=" + id + "&width=80", "height and width go together"},
		{"zero height", "reconnect=" + id + "&height=0&width=80", `invalid height parameter "0"`},
		{"height too big", "reconnect=" + id + "&height=65536&width=80", `invalid height parameter "65536"`},
		{"negative width", "reconnect=" + id + "&height=24&width=-1", `invalid width parameter "-1"`},
		{"width not a number", "reconnect=" + id + "&height=24&width=8x", `invalid width parameter "8x"`},
		{"unknown backend", "reconnect=" + id + "&backend=tmux", `invalid backend parameter "tmux"`},
		{"init too large", "reconnect=" + id + "&command=" + strings.Repeat("x", reconnectingpty.MaxInitSize), "exceeds the 65535-byte limit"},
		{"resume not 0 or 1", "reconnect=" + id + "&resume=yes", `invalid resume parameter "yes"`},
		{"offset without resume", "reconnect=" + id + "&offset=10", "offset parameter without resume=1"},
		{"offset with resume=0", "reconnect=" + id + "&resume=0&offset=10", "offset parameter without resume=1"},
		{"negative offset", "reconnect=" + id + "&resume=1&offset=-1", `invalid offset parameter "-1"`},
		{"offset not a number", "reconnect=" + id + "&resume=1&offset=12x", `invalid offset parameter "12x"`},
		{"offset beyond 64 bits", "reconnect=" + id + "&resume=1&offset=18446744073709551616", `invalid offset parameter "18446744073709551616"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ws?"+tc.query, nil))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %q", rec.Code, rec.Body.String())
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			body := rec.Body.String()
			if !strings.Contains(body, tc.want) || strings.Count(body, "\n") != 1 {
				t.Errorf("body %q, want one line containing %q", body, tc.want)
			}
		})
	}

	// A valid query passes validation: without an upgrade the WebSocket
	// library, not the validation, answers.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ws?reconnect="+id+"&height=24&width=80&backend=buffered", nil))
	if rec.Code == http.StatusBadRequest || rec.Code < 400 {
		t.Errorf("valid query without upgrade: status %d, want a non-400 refusal; body %q", rec.Code, rec.Body.String())
	}
}

func TestWebPageAndMetrics(t *testing.T) {
	t.Parallel()
	d := newTestDaemon(t)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(d.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}

	resp, body := get("?reconnect=" + uuid.NewString())
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`src="vendor/xterm.js"`, `src="vendor/addon-fit.js"`, `src="vendor/addon-unicode11.js"`, `src="resume.js"`, `src="app.js"`, `href="vendor/xterm.css"`, `id="status"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("page CSP %q, want default-src 'self' and frame-ancestors 'none'", csp)
	}
	// The page's probe frames (probe.js): framed by the page alone.
	resp, body = get("probe-frame.html")
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != http.StatusOK ||
		!strings.Contains(body, `src="probe-frame.js"`) || !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'self'") {
		t.Errorf("probe-frame.html: %s, CSP %q, body %q; want 200 with default-src 'self', frame-ancestors 'self', loading probe-frame.js", resp.Status, csp, body)
	}
	// Nothing on the page may come from anywhere but the daemon.
	if strings.Contains(body, "//") {
		t.Errorf("page refers to another origin:\n%s", body)
	}

	for path, want := range map[string]string{
		"app.js":                         "text/javascript",
		"resume.js":                      "text/javascript",
		"probe.js":                       "text/javascript",
		"probe-frame.js":                 "text/javascript",
		"vendor/addon-unicode11.js":      "text/javascript",
		"vendor/LICENSE.addon-unicode11": "text/plain",
		"style.css":                      "text/css",
		"vendor/xterm.js":                "text/javascript",
		"vendor/xterm.css":               "text/css",
		"vendor/addon-fit.js":            "text/javascript",
		"vendor/LICENSE.xterm":           "text/plain",
	} {
		resp, body := get(path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || body == "" {
			t.Errorf("%s: %s %q (%d bytes), want 200 %s", path, resp.Status, resp.Header.Get("Content-Type"), len(body), want)
		}
	}
	if resp, _ := get("vendor/README.md"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("vendor/README.md: %s, want 404 (only the page's files are embedded)", resp.Status)
	}

	resp, body = get("metrics")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "rptyd_") {
		t.Errorf("metrics: %s, no rptyd_ metric in:\n%s", resp.Status, body)
	}

	// The page's probe of the path while it reconnects: empty, never
	// cached, and on a connection of its own (a pooled one may have died
	// with the path).
	resp, body = get("alive")
	if resp.StatusCode != http.StatusNoContent || body != "" || !resp.Close || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("alive: %s, body %q, close %v, Cache-Control %q; want an empty 204, no-store, Connection: close",
			resp.Status, body, resp.Close, resp.Header.Get("Cache-Control"))
	}
}

func TestWebSocketBridge(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := newTestDaemon(t)
	id := uuid.New()

	// The init's size reaches the PTY, input and resizes go through as
	// protocol requests, output comes back.
	c := dialBridge(ctx, t, d, sessionQuery(id, "30", "100"))
	c.send(ctx, reconnectingpty.Request{Data: "echo bridged-$((40+2)); stty size\r"})
	c.waitOutput(ctx, "bridged-42\r\n30 100\r\n")
	c.send(ctx, reconnectingpty.Request{Height: 40, Width: 123})
	c.send(ctx, reconnectingpty.Request{Data: "stty size\r"})
	c.waitOutput(ctx, "40 123\r\n")
	if err := c.conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	c.waitClosed(ctx)

	// The same UUID reattaches: the replay has the earlier output, and
	// the shell is the same one.
	c = dialBridge(ctx, t, d, sessionQuery(id, "", ""))
	c.waitOutput(ctx, "bridged-42")
	c.send(ctx, reconnectingpty.Request{Data: "echo still-$((20+3))\r"})
	c.waitOutput(ctx, "still-23")

	// A text message is not protocol input: that connection ends with
	// 1003, the session does not.
	other := dialBridge(ctx, t, d, sessionQuery(id, "", ""))
	other.waitOutput(ctx, "still-23")
	if err := other.conn.Write(ctx, websocket.MessageText, []byte(`{"data":"echo text\r"}`)); err != nil {
		t.Fatal(err)
	}
	if err := other.waitClosed(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Errorf("after a text message: %v, want close status 1003", err)
	}

	// Exiting the shell ends the session: its last output, then the
	// "session ended" close code.
	c.send(ctx, reconnectingpty.Request{Data: "echo bye-$((1+1)); exit\r"})
	err := c.waitClosed(ctx)
	if websocket.CloseStatus(err) != statusSessionEnded {
		t.Errorf("after exit: %v, want close status %d", err, statusSessionEnded)
	}
	c.waitOutput(ctx, "bye-2")

	// A server-side cut (not the session's end) is a plain network
	// failure to the client: it must not read "session ended".
	c = dialBridge(ctx, t, d, sessionQuery(uuid.New(), "", ""))
	c.send(ctx, reconnectingpty.Request{Data: "echo cut-$((3*3))\r"})
	c.waitOutput(ctx, "cut-9")
	if n := d.cut(); n == 0 {
		t.Fatal("no hijacked connection to cut")
	}
	if err := c.waitClosed(ctx); websocket.CloseStatus(err) == statusSessionEnded {
		t.Errorf("after a cut: %v, want anything but session ended", err)
	}
}

// TestWebSocketSlowConsumer checks that a page the server cuts off for not
// reading is not told its session ended, so it reconnects to it, and that
// the session carries on.
func TestWebSocketSlowConsumer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	d := newTestDaemon(t, func(cfg *reconnectingpty.Config) {
		cfg.ConnQueueSize = 64 << 10
		cfg.SlowConsumerTimeout = 300 * time.Millisecond
	})
	id := uuid.New()

	// A client that reads nothing: the socket buffers fill, the bridge's
	// write blocks, the queue overflows, the server cuts it off.
	conn, resp, err := websocket.Dial(ctx, d.wsURL(sessionQuery(id, "", "")), nil)
	if err != nil {
		t.Fatalf("dial bridge: %v", err)
	}
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	conn.SetReadLimit(-1)
	var buf bytes.Buffer
	if err := reconnectingpty.WriteRequest(&buf, reconnectingpty.Request{Data: "head -c 16000000 /dev/zero | tr '\\0' x; echo; echo flood-$((2*5))-done\r"}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Write(ctx, websocket.MessageBinary, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The server counts the connection once the bridge hands it over,
	// a moment after the handshake: see it come, then go.
	for d.srv.ConnCount() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the bridge never served the connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for d.srv.ConnCount() > 0 {
		if ctx.Err() != nil {
			t.Fatal("the client that reads nothing was never cut off")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reading at last, it gets what was buffered, then an end that is
	// not "session ended".
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		if websocket.CloseStatus(err) == statusSessionEnded || ctx.Err() != nil {
			t.Fatalf("slow consumer read %v, want an end without the session-ended code", err)
		}
		break
	}

	// Reconnecting, as the page does, reaches the same live session. A
	// reconnect during the flood may be cut off in turn: retry then.
	for attempt := 1; ; attempt++ {
		c := dialBridge(ctx, t, d, sessionQuery(id, "", ""))
		if c.waitOutputOrEnd(ctx, "flood-10-done") {
			c.send(ctx, reconnectingpty.Request{Data: "echo alive-$((1+1))\r"})
			c.waitOutput(ctx, "alive-2")
			return
		}
		if err := c.waitClosed(ctx); websocket.CloseStatus(err) == statusSessionEnded || attempt == 20 {
			t.Fatalf("reconnect %d ended: %v", attempt, err)
		}
	}
}
