// Command rptyd is an example daemon that serves reconnecting PTY sessions
// on a TCP port.
//
//	go run ./examples/rptyd --listen 127.0.0.1:7681
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"cdr.dev/slog/v3/sloggers/sloghuman"
	"cdr.dev/slog/v3/sloggers/slogjson"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconnectingpty/reconnectingpty"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rptyd:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		listen    = flag.String("listen", "127.0.0.1:7681", "address to serve the reconnecting PTY protocol on")
		viewAddr  = flag.String("view-listen", "127.0.0.1:7682", `address where every connection is read-only (rpty --view); "" disables it`)
		httpAddr  = flag.String("http", "127.0.0.1:8080", `address for the web terminal and /metrics; "" disables it`)
		backend   = flag.String("backend", "auto", "default backend: auto (= vt), vt, buffered or screen")
		timeout   = flag.Duration("timeout", 5*time.Minute, "how long a session outlives its last connection; negative keeps it until it exits or is closed")
		sizePol   = flag.String("size-policy", "latest", "terminal size of a session shared by clients of different sizes: latest, smallest or largest")
		buffer    = flag.Int("buffer", 64<<10, "bytes of output the buffered backend replays")
		scrollbk  = flag.Int("scrollback", 1000, "lines above the screen a vt session keeps and repaints on attach; 0 keeps none")
		resumeBuf = flag.Int("resume-buffer", 1<<20, "bytes of output a session keeps so that a resuming client gets exactly what it missed")
		logFormat = flag.String("log-format", "human", "log format on stderr: human or json")
		drain     = flag.Duration("drain", 3*time.Second, "how long a shutdown waits for clients to take their last output")
		allowHost = flag.String("allow-host", "", "comma-separated host names the web terminal also answers to (besides loopback and --http's)")
		shortIDs  = flag.Bool("short-session-ids", false, "log the first 8 hex digits of session IDs, not all of them")
		upgradeTo = flag.String("upgrade-binary", "/proc/self/exe", "the program SIGUSR2 and POST /upgrade hand the sessions to (docs/upgrade.md)")
	)
	flag.Parse()

	var logger slog.Logger
	switch *logFormat {
	case "human":
		logger = slog.Make(sloghuman.Sink(os.Stderr))
	case "json":
		logger = slog.Make(slogjson.Sink(os.Stderr))
	default:
		return fmt.Errorf("--log-format %q: want human or json", *logFormat)
	}

	// Started by an upgrade: the sessions and listeners of the previous
	// image. A state this build cannot read still gives the listeners.
	handover, err := reconnectingpty.Inherited()
	if err != nil {
		logger.Error(context.Background(), "taking over from the previous image", slog.Error(err))
	}
	if handover != nil {
		defer handover.Close()
	}
	listenAs := func(name, addr string) (net.Listener, error) {
		if handover != nil {
			if l, ok := handover.Listener(name); ok {
				return l, nil
			}
		}
		return net.Listen("tcp", addr)
	}

	reg := prometheus.NewRegistry()
	metrics, err := reconnectingpty.NewMetrics(reg, "rptyd")
	if err != nil {
		return err
	}
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Logger:           logger,
		Metrics:          metrics,
		Timeout:          *timeout,
		BufferSize:       *buffer,
		ResumeBufferSize: *resumeBuf,
		Backend:          reconnectingpty.BackendType(*backend),
		ScrollbackLines:  scrollbackLines(*scrollbk),

		LogShortSessionID: *shortIDs,
		SizePolicy:        reconnectingpty.SizePolicy(*sizePol),
		// Connections accepted on the view listener watch only.
		ConnOptions: func(_ reconnectingpty.Init, nc net.Conn) reconnectingpty.ConnOptions {
			_, view := nc.(viewConn)
			return reconnectingpty.ConnOptions{ReadOnly: view}
		},
	})
	if err != nil {
		return err
	}
	if err := srv.Restore(context.Background(), handover); err != nil {
		return err
	}

	ln, err := listenAs("rpty", *listen)
	if err != nil {
		return err
	}
	// carried are the listeners an upgrade hands to the next image.
	carried := map[string]net.Listener{"rpty": ln}
	var viewLn net.Listener
	if *viewAddr != "" {
		l, err := listenAs("view", *viewAddr)
		if err != nil {
			_ = ln.Close()
			return err
		}
		carried["view"] = l
		viewLn = viewListener{l}
	}
	// The first SIGINT or SIGTERM starts a graceful shutdown; a second
	// one, or --drain of draining, cuts off what is left.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	hardCtx, hardStop := context.WithCancel(context.Background())
	defer hardStop()
	signalsDone := make(chan struct{})
	defer func() { <-signalsDone }()
	defer hardStop() // runs before the wait above
	go func() {
		defer close(signalsDone)
		select {
		case <-sigs:
		case <-hardCtx.Done():
			return
		}
		stop()
		timer := time.NewTimer(*drain)
		defer timer.Stop()
		select {
		case <-sigs:
		case <-timer.C:
		case <-hardCtx.Done():
		}
		hardStop()
	}()

	upgrade := func(ctx context.Context) error {
		return srv.Upgrade(ctx, reconnectingpty.UpgradeOptions{Path: *upgradeTo, Listeners: carried})
	}
	// SIGUSR2 upgrades in place: the sessions go on in the new image.
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	upgradesDone := make(chan struct{})
	defer func() { <-upgradesDone }()
	defer hardStop()
	go func() {
		defer close(upgradesDone)
		for {
			select {
			case <-usr2:
			case <-hardCtx.Done():
				return
			}
			logger.Info(ctx, "SIGUSR2: upgrading", slog.F("binary", *upgradeTo))
			upCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := upgrade(upCtx); err != nil {
				logger.Error(ctx, "upgrade failed; serving on", slog.Error(err))
			}
			cancel()
		}
	}()

	var httpSrv *http.Server
	httpDone := make(chan error, 1)
	if *httpAddr != "" {
		hl, err := listenAs("http", *httpAddr)
		if err != nil {
			_ = ln.Close()
			if viewLn != nil {
				_ = viewLn.Close()
			}
			return err
		}
		var extra []string
		if *allowHost != "" {
			extra = strings.Split(*allowHost, ",")
		}
		carried["http"] = hl
		mux := http.NewServeMux()
		mux.Handle("/", newHTTPHandler(srv, reg, logger))
		mux.Handle("POST /upgrade", upgradeHandler(upgrade, logger))
		handler := newHostGuard(mux, hl.Addr().String(), extra)
		httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
		go func() { httpDone <- httpSrv.Serve(hl) }()
		logger.Info(ctx, "serving http", slog.F("addr", hl.Addr().String()))
	}

	logger.Info(ctx, "serving reconnecting pty", slog.F("addr", ln.Addr().String()),
		slog.F("backend", *backend), slog.F("timeout", timeout.String()))
	viewDone := make(chan error, 1)
	if viewLn != nil {
		logger.Info(ctx, "serving read-only reconnecting pty", slog.F("addr", viewLn.Addr().String()))
		go func() { viewDone <- srv.Serve(ctx, hardCtx, viewLn) }()
	} else {
		viewDone <- nil
	}
	serveErr := srv.Serve(ctx, hardCtx, ln)
	// Serve shut the server down on its way out, which ends the view
	// listener's Serve too.
	if err := <-viewDone; err != nil && !errors.Is(err, reconnectingpty.ErrServerClosed) && serveErr == nil {
		serveErr = err
	}
	if httpSrv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = httpSrv.Shutdown(shutdownCtx)
		cancel()
		if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn(ctx, "http server", slog.Error(err))
		}
	}
	logger.Info(context.Background(), "stopped")
	return serveErr
}

// viewListener marks the connections it accepts as viewConn, which the
// server's ConnOptions hook serves read-only: here the daemon decides by
// the port a client came in on. An embedding application decides from its
// own authorisation of the user instead.
type viewListener struct{ net.Listener }

func (l viewListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return viewConn{c}, nil
}

// SetDeadline lets an upgrade hold Serve's Accept without closing the
// listener.
func (l viewListener) SetDeadline(t time.Time) error {
	if d, ok := l.Listener.(interface{ SetDeadline(time.Time) error }); ok {
		return d.SetDeadline(t)
	}
	return nil
}

// upgradeHandler serves POST /upgrade: the daemon hands its sessions to
// --upgrade-binary. A success has no response (the process is a new image
// by then, and the connection is gone); a failure is a 500 with the error,
// and the daemon serves on. A request with an Origin header is refused: a
// web page a browser shows must not be able to trigger it (a form POST
// needs no CORS preflight).
func upgradeHandler(upgrade func(context.Context) error, logger slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			http.Error(w, "upgrade is not for web pages", http.StatusForbidden)
			return
		}
		logger.Info(r.Context(), "POST /upgrade: upgrading", slog.F("remote_addr", r.RemoteAddr))
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
		defer cancel()
		if err := upgrade(ctx); err != nil {
			logger.Error(r.Context(), "upgrade failed; serving on", slog.Error(err))
			http.Error(w, "upgrade failed: "+err.Error(), http.StatusInternalServerError)
		}
	})
}

// viewConn is a connection accepted on the view listener.
type viewConn struct{ net.Conn }

// CloseWrite keeps the half-close that tells a client its session ended.
func (c viewConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// SetLinger keeps the reset with which the server ends a connection that
// did not end with its session.
func (c viewConn) SetLinger(sec int) error {
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		return l.SetLinger(sec)
	}
	return nil
}

// scrollbackLines maps --scrollback to Config.ScrollbackLines, where 0
// means the default and a negative value none.
func scrollbackLines(flagValue int) int {
	if flagValue <= 0 {
		return -1
	}
	return flagValue
}
