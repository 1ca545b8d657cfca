package main

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"time"

	"cdr.dev/slog/v3"
	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
)

// webFiles is the web terminal: the page, its script and style, and the
// vendored xterm.js (see web/vendor/README.md). Listed file by file so that
// nothing else in web/ is served by accident.
//
//go:embed web/index.html web/app.js web/resume.js web/link.js web/predict.js web/probe.js web/probe-frame.html web/probe-frame.js web/style.css web/sessions.js web/sessions.css
//go:embed web/vendor/xterm.js web/vendor/xterm.css web/vendor/addon-fit.js web/vendor/addon-unicode11.js web/vendor/LICENSE.*
var webFiles embed.FS

// statusSessionEnded is the WebSocket close code the bridge sends when the
// session ended: its process exited, it timed out, or the server shut down.
// The page then stops reconnecting, since reattaching to that ID would
// silently start a new shell. Codes 4000-4999 are for applications (RFC
// 6455 7.4.2).
const statusSessionEnded websocket.StatusCode = 4000

// statusCatchingUp is the close code of a page that drops its connection
// because xterm.js has fallen too far behind the output (its flow control);
// it reconnects with its offset once it has caught up. The bridge ends the
// connection as a graceful close by the client, which it is.
const statusCatchingUp websocket.StatusCode = 4001

// newHTTPHandler serves the web terminal on / (its page and vendored
// scripts), its WebSocket bridge on /ws, the session list and close on
// /sessions (see sessionsAPI), the page's probe of the path on /alive, and
// the Prometheus metrics of reg on
// /metrics. The paths the page uses are relative, so the handler also
// works mounted under a prefix with http.StripPrefix.
//
// The bridges need no context of their own: shutting srv down ends every
// attached connection, after flushing the session's last output to it.
//
// A session ID is a capability: whoever knows it can read and type into
// that session. This example listens on loopback and authenticates no one;
// an application that embeds the bridge must authenticate the user before
// bridging a request to the server.
func newHTTPHandler(srv *reconnectingpty.Server, reg *prometheus.Registry, logger slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/ws", &webBridge{srv: srv, logger: logger.Named("web")})
	api := &sessionsAPI{srv: srv, logger: logger.Named("sessions")}
	mux.HandleFunc("GET /sessions", api.list)
	mux.HandleFunc("DELETE /sessions/{id}", api.close)
	mux.HandleFunc("GET /alive", alive)
	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		// fs.Sub fails only on an invalid path name, which "web" is not.
		panic(err)
	}
	mux.Handle("/", staticHeaders(http.FileServerFS(web)))
	return mux
}

// The web server's timeouts. idleTimeout is short for the page's probes
// (probe.js): a keep-alive connection left idle when the path goes silent
// stays in the browser's pool, dead, and the probes of its socket group
// would wait on it instead of sending a SYN. Closed a second after its
// last request, the page's connections are gone before an outage is
// noticed (3 s).
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = time.Second
)

// alive answers the page's probe of the path while it reconnects
// (app.js, PROBE_PATH): an empty 204, never cached, on a connection that is
// closed after it, so that the next probe opens a fresh one rather than
// reuse a connection that may have died since.
func alive(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusNoContent)
}

// staticHeaders adds the headers the page wants: a content security policy
// that keeps it to its own origin (no script, style or connection anywhere
// else, and framed by nothing but itself), and no caching, since the embedded files carry no modification time
// to revalidate against.
func staticHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// xterm.js writes <style> elements for its renderer, hence
		// 'unsafe-inline' for styles (not for scripts).
		// The page's probe frames (probe.js) are the only document it
		// frames, and only it may frame them.
		ancestors := "'none'"
		if path.Base(r.URL.Path) == "probe-frame.html" {
			ancestors = "'self'"
		}
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors "+ancestors)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// webBridge accepts a WebSocket and serves it to the reconnecting PTY
// server as one protocol connection. The query names the session and how to
// create it:
//
//	reconnect  the session UUID (required; the page makes one up for a new session)
//	height     initial rows, 1-65535 (with width; default 24x80)
//	width      initial columns, 1-65535 (with height)
//	command    the command line for a new session (default: the login shell)
//	backend    auto, vt, buffered or screen (default: the daemon's --backend)
//	resume     1 to ask for the resume extension (docs/PROTOCOL.md), 0 or absent not to
//	offset     with resume: bytes of the session's output the page has already (default 0)
//	view       1 serves the connection read-only (see viewOptions)
//	flow       1: the page acknowledges the output it has rendered, and is sent
//	           at most flowWindow bytes ahead of that (see bridgeConn)
//
// An invalid query is answered 400 with a plain-text reason before any
// upgrade. After the upgrade every binary message from the page carries
// protocol requests ({"data":"..."}, {"height":H,"width":W}); text messages
// are acknowledgements ("ack N") with flow=1, and refused otherwise (the
// connection closes with 1003). The terminal output comes
// back as binary messages of raw bytes; with resume, the extension's header
// comes first. A page that closes with 4001 (catching up) has closed
// gracefully, and is logged as such. When the session ends (its process
// exited, it timed out, the server shut down), the last output is followed
// by the close code 4000 ("session ended"). Any other end of the connection
// (a page cut off for falling behind, a protocol error, a forced shutdown)
// comes without a close frame, and the page reconnects.
//
// A session ID is a capability: whoever knows it can read and type into
// that session. The embedding application must authenticate the user before
// bridging a request to the server. The default origin check of
// websocket.Accept (same host only) keeps other sites' pages from bridging
// through a logged-in browser, but is no authentication.
type webBridge struct {
	srv    *reconnectingpty.Server
	logger slog.Logger
}

func (b *webBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	init, err := initFromQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	opts, err := viewOptions(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	opts.QueueSize = webQueueSize
	flow, err := flowParam(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Encoding here rather than in the connection keeps the framing in one
	// place (the library) and turns an oversized command into a 400.
	var frame bytes.Buffer
	if err := reconnectingpty.WriteInit(&frame, init); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	ctx := r.Context()
	logger := b.logger.With(slog.F("session_id", init.ID.String()), slog.F("remote_addr", r.RemoteAddr))
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		// Accept has answered the request already.
		logger.Debug(ctx, "web terminal upgrade refused", slog.Error(xerrors.Errorf("accept websocket: %w", err)))
		return
	}
	nc := newBridgeConn(ctx, ws, frame.Bytes(), flow)
	if err := b.srv.ServeConnWith(ctx, nc, opts); err != nil {
		logger.Debug(ctx, "web terminal not served", slog.Error(xerrors.Errorf("serve websocket: %w", err)))
	}
	if nc.catchingUp.Load() {
		logger.Debug(ctx, "web terminal dropped its connection to catch up with the output; it resumes from its offset")
	}
	// The server has closed nc by now (or never took it); wait for the
	// closing handshake, which runs in the background.
	nc.wait()
}

// initFromQuery validates the bridge's query parameters into an init.
func initFromQuery(q url.Values) (reconnectingpty.Init, error) {
	var init reconnectingpty.Init
	raw := q.Get("reconnect")
	if raw == "" {
		return init, xerrors.New("missing reconnect parameter: want the session UUID (a new UUID starts a new session)")
	}
	id, err := uuid.Parse(raw)
	if err != nil || id == uuid.Nil {
		return init, xerrors.Errorf("invalid reconnect parameter %q: want a non-nil session UUID", raw)
	}
	init.ID = id

	hs, ws := q.Get("height"), q.Get("width")
	if (hs == "") != (ws == "") {
		return init, xerrors.New("height and width go together: give both or neither")
	}
	if hs != "" {
		if init.Height, err = parseDimension("height", hs); err != nil {
			return init, err
		}
		if init.Width, err = parseDimension("width", ws); err != nil {
			return init, err
		}
	}

	init.Command = q.Get("command")
	switch backend := q.Get("backend"); reconnectingpty.BackendType(backend) {
	case "", reconnectingpty.BackendAuto, reconnectingpty.BackendVT, reconnectingpty.BackendBuffered, reconnectingpty.BackendScreen:
		init.BackendType = backend
	default:
		return init, xerrors.Errorf("invalid backend parameter %q: want %q, %q, %q or %q", backend,
			reconnectingpty.BackendAuto, reconnectingpty.BackendVT, reconnectingpty.BackendBuffered, reconnectingpty.BackendScreen)
	}

	switch resume := q.Get("resume"); resume {
	case "", "0":
	case "1":
		init.Resume = true
	default:
		return init, xerrors.Errorf("invalid resume parameter %q: want 1 or 0", resume)
	}
	if s := q.Get("offset"); s != "" {
		if !init.Resume {
			return init, xerrors.New("offset parameter without resume=1")
		}
		if init.Offset, err = strconv.ParseUint(s, 10, 64); err != nil {
			return init, xerrors.Errorf("invalid offset parameter %q: want the count of output bytes received, an unsigned integer", s)
		}
	}
	if l := q.Get("link"); l != "" {
		if !validLinkID(l) {
			return init, xerrors.Errorf("invalid link parameter %q: want 16 to 64 characters from [A-Za-z0-9_-]", l)
		}
		init.Link = l
	}
	if s := q.Get("input"); s != "" {
		if init.Link == "" {
			return init, xerrors.New("input parameter without link")
		}
		if init.InputOffset, err = strconv.ParseUint(s, 10, 64); err != nil {
			return init, xerrors.Errorf("invalid input parameter %q: want the page's input offset, an unsigned integer", s)
		}
	}
	return init, nil
}

// validLinkID is the link extension's rule for a link ID
// (docs/PROTOCOL.md): 16 to 64 characters from [A-Za-z0-9_-].
func validLinkID(s string) bool {
	if len(s) < 16 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// flowParam reads the flow parameter: whether the page acknowledges the
// output it has rendered (see bridgeConn).
func flowParam(q url.Values) (bool, error) {
	switch v := q.Get("flow"); v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	default:
		return false, xerrors.Errorf("invalid flow parameter %q: want 1 (the page acknowledges rendered output) or 0", v)
	}
}

func parseDimension(name, s string) (uint16, error) {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil || v == 0 {
		return 0, xerrors.Errorf("invalid %s parameter %q: want a whole number from 1 to 65535", name, s)
	}
	return uint16(v), nil
}
