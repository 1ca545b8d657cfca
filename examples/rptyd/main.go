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

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var viewLn net.Listener
	if *viewAddr != "" {
		l, err := net.Listen("tcp", *viewAddr)
		if err != nil {
			_ = ln.Close()
			return err
		}
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

	var httpSrv *http.Server
	httpDone := make(chan error, 1)
	if *httpAddr != "" {
		hl, err := net.Listen("tcp", *httpAddr)
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
		handler := newHostGuard(newHTTPHandler(srv, reg, logger), hl.Addr().String(), extra)
		httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
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
