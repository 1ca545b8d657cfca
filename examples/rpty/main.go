// Command rpty attaches the local terminal to a reconnecting PTY session
// served by the reconnectingpty library (for example by examples/rptyd).
//
// Usage:
//
//	go run ./examples/rpty [--addr 127.0.0.1:7681] [--id UUID] [--backend auto|buffered|screen] [-- command...]
//	go run ./examples/rpty --view --id UUID [--view-addr 127.0.0.1:7682]
//	go run ./examples/rpty ls [--http 127.0.0.1:8080]
//	go run ./examples/rpty kill [--http 127.0.0.1:8080] UUID
//
// With --view rpty watches a session read-only: it connects to the
// daemon's view port, where the daemon serves every connection read-only
// (the protocol has no way for a client to ask for that: the server
// decides), and sends nothing but its hang-up. ls and kill use the
// daemon's HTTP API (see manage.go).
//
// Without --id, rpty starts a new session under a new random ID; with
// --id it attaches to that session (or starts it, if it does not exist).
// The command after "--" is run by the server's shell when the session is
// created; without one the server starts a login shell.
//
// The local terminal is put in raw mode and its size is sent at start and
// whenever it changes. If the connection drops, rpty reconnects with
// backoff to the same session, showing a one-line status at the bottom of
// the screen meanwhile, and resumes where it left off: the output it
// missed follows, with no clear and no repaint. Only when the server no
// longer holds that output (or does not know how to resume) is the screen
// reset and repainted from the server's replay.
//
// Over a slow link rpty predicts the echo of typed keys, as mosh does
// (predict.go, docs/prediction.md): with -predict auto (the default), while
// the measured round trip is at least -predict-ms (30), a printable key
// typed at the end of the line shows at once, underlined until the
// program's own echo confirms it, and a wrong guess is taken back before
// the program's next output. -predict on predicts at any round trip,
// -predict off never.
//
// Detach: press Ctrl-\ and then d. The session keeps running on the
// server, and rpty prints the command to reattach to it. To send Ctrl-\
// itself to the session, press it twice. Ctrl-\ followed by any other key
// sends both keys.
//
// rpty exits when the session ends (exit status 0), on detach (0), on
// SIGTERM, SIGINT, SIGHUP or SIGQUIT (1, the session keeps running), or on an error
// (1). The terminal is restored on every one of these paths: its settings,
// and the modes the session's programs may have left on (alternate screen,
// hidden cursor, application keypad and cursor keys, mouse reporting,
// bracketed paste, colours).
//
// RPTY_CRASH_OUTPUT=path copies a crash report (a panic, or the goroutine
// dump of SIGQUIT once rpty has exited raw mode) to path, for when the
// terminal that would show it is gone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
)

const (
	defaultAddr = "127.0.0.1:7681"
	// defaultViewAddr is rptyd's read-only port (--view-listen).
	defaultViewAddr = "127.0.0.1:7682"
	// detachPrefix is Ctrl-\. Shells and editors rarely bind it, and in
	// raw mode it reaches us instead of raising SIGQUIT.
	detachPrefix = 0x1c
	// detachKey completes the detach sequence after detachPrefix.
	detachKey = 'd'
)

// usage is the help text; %[1]s is how the user ran this program
// (selfCommand), so a built binary names itself and go run names go run.
const usage = `Usage: %[1]s [flags] [-- command...]

Attach this terminal to a reconnecting PTY session. Without --id a new
session is started under a new random ID. The command after "--" is run
by the server's shell when the session is created; without one the server
starts a login shell.

Detach with Ctrl-\ then d: the session keeps running and rpty prints how
to reattach. Press Ctrl-\ twice to send Ctrl-\ itself.

--view --id ID watches a session read-only, through the daemon's view port.
"%[1]s ls" lists the daemon's sessions and "%[1]s kill ID" ends one,
through its HTTP API (%[1]s ls --help).

Flags:
`

func main() {
	// Once rpty has handed the terminal back, or the terminal is gone, a
	// crash report on standard error is lost: RPTY_CRASH_OUTPUT names a
	// file that gets a copy (a panic, or the goroutine dump of SIGQUIT).
	if path := os.Getenv("RPTY_CRASH_OUTPUT"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = debug.SetCrashOutput(f, debug.CrashOptions{})
		}
	}
	os.Exit(run(os.Args[1:]))
}

// run is the whole program; it returns the exit status, after restoring
// the terminal, so that main's os.Exit skips no cleanup.
func run(args []string) int {
	if len(args) > 0 && (args[0] == "ls" || args[0] == "kill") {
		return runManage(args[0], args[1:])
	}
	fs := flag.NewFlagSet("rpty", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	addr := fs.String("addr", defaultAddr, "server address (host:port)")
	idFlag := fs.String("id", "", "session ID to attach to; empty starts a new session")
	backend := fs.String("backend", "auto", "backend for a new session: auto (the server's default), vt, buffered or screen")
	view := fs.Bool("view", false, "watch the session --id read-only, through the daemon's view port")
	viewAddr := fs.String("view-addr", defaultViewAddr, "the daemon's read-only view port (host:port), for --view")
	httpAddr := fs.String("http", defaultHTTP, `with --view, the daemon's HTTP address, to check that the session exists; "" skips the check`)
	predict := addPredictFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), usage, selfCommand(os.Args[0]))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	id := uuid.New()
	if *idFlag != "" {
		var err error
		if id, err = uuid.Parse(*idFlag); err != nil {
			fmt.Fprintf(os.Stderr, "rpty: --id %q: %v\n", *idFlag, err)
			return 2
		}
	}
	if *view && *idFlag == "" {
		fmt.Fprintln(os.Stderr, "rpty: --view needs --id: a viewer watches an existing session")
		return 2
	}
	if *view && *httpAddr != "" {
		if code := checkSessionExists(*httpAddr, id); code != 0 {
			return code
		}
	}
	switch reconnectingpty.BackendType(*backend) {
	case reconnectingpty.BackendAuto, reconnectingpty.BackendVT, reconnectingpty.BackendBuffered, reconnectingpty.BackendScreen:
	default:
		fmt.Fprintf(os.Stderr, "rpty: --backend %q: want auto, vt, buffered or screen\n", *backend)
		return 2
	}

	if err := predict.check(); err != nil {
		fmt.Fprintf(os.Stderr, "rpty: %v\n", err)
		return 2
	}

	if *view {
		*addr = *viewAddr
	}
	s := &session{
		view:    *view,
		addr:    *addr,
		id:      id,
		command: strings.Join(fs.Args(), " "),
		backend: *backend,
		in:      os.Stdin,
		out:     os.Stdout,
		errOut:  os.Stderr,
		predict: predict,
	}
	return s.run()
}

// session is one run of the CLI against one session ID.
type session struct {
	view                   bool // watch only: send no input or resize
	addr, command, backend string
	id                     uuid.UUID
	in, out, errOut        *os.File

	// outMu serializes writes to the terminal from the output copy and
	// the status line, and guards modes.
	outMu sync.Mutex
	modes modeTracker
	rows  atomic.Int32 // terminal size, for the status line
	cols  atomic.Int32
	// termFd is the terminal whose size is sent, or -1 if there is none.
	termFd               int
	outIsTerm, errIsTerm bool

	// predict is the command line's prediction settings; pred, guarded
	// by outMu, the predictor (predict.go), nil when not predicting.
	predict predictFlags
	pred    *predictor
}

// run connects, relays until the session ends, the user detaches, a
// signal arrives or an error happens, and reports which.
func (s *session) run() int {
	// Descriptors are looked at once, here: (*os.File).Fd may switch a
	// descriptor back to blocking mode, which must not happen once
	// openInput has made it non-blocking.
	inFd, outFd, errFd := int(s.in.Fd()), int(s.out.Fd()), int(s.errOut.Fd())
	inIsTerm := term.IsTerminal(inFd)
	s.outIsTerm, s.errIsTerm = term.IsTerminal(outFd), term.IsTerminal(errFd)
	s.termFd = -1
	switch {
	case inIsTerm:
		s.termFd = inFd
	case s.outIsTerm:
		s.termFd = outFd
	}
	height, width := s.size()

	// Signals are caught before anything changes the terminal, so that
	// none of them can end the process without the cleanup below.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGWINCH, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	// Everything that changes the terminal is undone by restore, called
	// on the way out and, for panics, deferred. Order matters: the
	// terminal mode, then the input flags.
	var undo []func()
	var restoreOnce sync.Once
	restore := func() {
		restoreOnce.Do(func() {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		})
	}
	defer restore()

	in, err := openInput(inFd)
	if err != nil {
		fmt.Fprintf(s.errOut, "rpty: %v\n", err)
		return 1
	}
	undo = append(undo, in.restoreFlags)
	// Output goes through new files too: when stdout shares the
	// terminal's open file with stdin it is non-blocking now, and only a
	// file that Go's poller knows waits out EAGAIN instead of failing.
	// They are never closed, which would close the descriptors. Set
	// before Dial: the client's goroutine writes the status line.
	out, errOut := os.NewFile(uintptr(outFd), "stdout"), os.NewFile(uintptr(errFd), "stderr")
	s.out, s.errOut = out, errOut

	dial := func(ctx context.Context) (net.Conn, error) {
		// A silently dead network is noticed by the client: heartbeats
		// (the link extension) and, for servers without it, the TCP
		// keepalive and TCP_USER_TIMEOUT it sets on the connection.
		var d net.Dialer
		return d.DialContext(ctx, "tcp", s.addr)
	}
	// The terminal is still cooked here, so Ctrl-C can cut a slow first
	// dial short; the signal is also in sigs and ends the run below.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	c, err := client.Dial(ctx, dial, reconnectingpty.Init{
		ID:          s.id,
		Height:      height,
		Width:       width,
		Command:     s.command,
		BackendType: s.backend,
	}, client.Options{
		OnState:  s.status,
		OnReplay: s.clearScreen,
		OnReset:  s.resetScreen,
		// Retried at least every second: live again within about a
		// second of the network's return.
		MinBackoff: 250 * time.Millisecond,
		MaxBackoff: time.Second,
	})
	stopSignals()
	cancel()
	if err != nil {
		restore()
		fmt.Fprintf(s.errOut, "rpty: connect to %s: %v\n", s.addr, err)
		return 1
	}
	defer c.Close() // for panics; the Close below makes it a no-op

	if inIsTerm {
		old, err := term.MakeRaw(inFd)
		if err != nil {
			_ = c.Close()
			restore()
			fmt.Fprintf(s.errOut, "rpty: raw mode: %v\n", err)
			return 1
		}
		undo = append(undo, func() { _ = term.Restore(inFd, old) })
	}
	// Undone first: whatever the session's programs switched on.
	undo = append(undo, s.restoreModes)
	s.startPredicting(s.predict, c, inIsTerm, height, width)
	stopExpiring, expiringDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(expiringDone)
		if s.pred != nil {
			s.expireGuesses(stopExpiring)
		}
	}()

	outDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(trackingWriter{s}, c)
		outDone <- err
	}()
	inDone := make(chan error, 1)
	go func() { inDone <- s.relayInput(in.f, c) }()

	var (
		code int
		msg  string
	)
	detachMsg := "detached; reattach with: " + s.reattachCommand()
loop:
	for {
		select {
		case err := <-outDone:
			outDone = nil
			if err == nil {
				msg = "session ended"
			} else {
				code, msg = 1, fmt.Sprintf("%v; %s", err, detachMsg)
			}
			break loop
		case err := <-inDone:
			inDone = nil
			if errors.Is(err, errDetach) {
				msg = detachMsg
				break loop
			}
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, client.ErrSessionEnded) {
				code, msg = 1, fmt.Sprintf("read input: %v; %s", err, detachMsg)
				break loop
			}
			// Input ended (not a terminal), or the session ended under
			// it: keep copying output until the output says so.
		case sig := <-sigs:
			if sig == syscall.SIGWINCH {
				if h, w := s.size(); h != 0 && !s.view {
					s.predictResize(h, w)
					_ = c.Resize(h, w)
				}
				continue
			}
			code, msg = 1, fmt.Sprintf("%v; %s", sig, detachMsg)
			break loop
		}
	}

	// Close detaches (the session lives on unless it ended) and ends the
	// output copy; the input reader is ended by its deadline.
	_ = c.Close()
	if outDone != nil {
		<-outDone
	}
	in.stop()
	if inDone != nil && in.interruptible {
		<-inDone
	}
	close(stopExpiring)
	<-expiringDone
	restore()
	if s.errIsTerm {
		// The session's output may have left the cursor mid-line and
		// colours set.
		fmt.Fprint(s.errOut, "\r\n\x1b[0m")
	}
	fmt.Fprintf(s.errOut, "rpty: %s\n", msg)
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	runtime.KeepAlive(errOut)
	return code
}

// size is the local terminal size, or 0, 0 when it is not known (the
// server then uses its default).
func (s *session) size() (uint16, uint16) {
	if s.termFd < 0 {
		return 0, 0
	}
	w, h, err := term.GetSize(s.termFd)
	if err != nil || w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
		return 0, 0
	}
	s.rows.Store(int32(h))
	s.cols.Store(int32(w))
	return uint16(h), uint16(w)
}

// selfCommand is how a user runs this program again: the binary they ran,
// or "go run ./examples/rpty" when it is a binary that go run built in a
// temporary directory and removes on exit.
func selfCommand(arg0 string) string {
	if strings.Contains(arg0, "go-build") || arg0 == "" {
		return "go run ./examples/rpty"
	}
	return arg0
}

// reattachCommand is the command line that attaches to this session again.
func (s *session) reattachCommand() string {
	cmd := selfCommand(os.Args[0])
	switch {
	case s.view && s.addr != defaultViewAddr:
		cmd += " --view --view-addr " + s.addr
	case s.view:
		cmd += " --view"
	case s.addr != defaultAddr:
		cmd += " --addr " + s.addr
	}
	return cmd + " --id " + s.id.String()
}

// status shows connection state changes. On a terminal it draws one line
// at the bottom of the screen and puts the cursor back, so the session's
// screen is not scrolled or garbled, and once reconnected paints that row
// back as the program drew it (from the predictor's model of the screen)
// or, without one, clears it: a resumed connection gets only the bytes it
// missed, no repaint that would cover it.
func (s *session) status(ev client.Event) {
	var line string
	switch ev.State {
	case client.StateReconnecting:
		line = fmt.Sprintf("rpty: connection lost; reconnecting in %s (attempt %d; Ctrl-\\ d detaches): %v",
			ev.Delay.Round(10*time.Millisecond), ev.Attempt, ev.Err)
	case client.StateConnected:
		if ev.Attempt == 0 {
			return
		}
		line = fmt.Sprintf("rpty: reconnected (attempt %d)", ev.Attempt)
	default:
		return // the end is reported by run
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if rows, cols := s.rows.Load(), int(s.cols.Load()); rows > 0 && s.errIsTerm {
		// A line that wrapped would scroll the screen: cut it to fit.
		if r := []rune(line); len(r) > cols-1 {
			line = string(r[:max(cols-1, 0)])
		}
		if s.pred != nil && s.outIsTerm {
			// The model of the screen paints the row back once
			// reconnected (see statusrow.go).
			draw := line
			if ev.State == client.StateConnected {
				draw = ""
			}
			if b, ok := s.pred.statusRow(draw, int(rows), cols); ok {
				_, _ = s.out.Write(b)
				return
			}
		}
		if ev.State == client.StateConnected {
			// Save cursor, clear the last row, restore the cursor.
			fmt.Fprintf(s.errOut, "\x1b7\x1b[%d;1H\x1b[2K\x1b8", rows)
			return
		}
		// Save cursor, go to the last row, clear it, reverse video, then
		// restore the cursor (and its attributes).
		fmt.Fprintf(s.errOut, "\x1b7\x1b[%d;1H\x1b[2K\x1b[7m%s\x1b[0m\x1b8", rows, line)
		return
	}
	fmt.Fprintf(s.errOut, "%s\r\n", line)
}

// clearScreen runs just before the replay of a reconnected connection is
// written, so that the replay repaints a clean screen instead of
// repeating what is already shown.
func (s *session) clearScreen() {
	if !s.outIsTerm {
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_, _ = s.writeOut([]byte("\x1b[0m\x1b[H\x1b[2J"))
}

// resetScreen runs before the server redraws the session from scratch
// (a resume reset): the terminal is put back to its defaults and cleared,
// scrollback included, so that the redraw lands on a blank terminal.
func (s *session) resetScreen() {
	if !s.outIsTerm {
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_, _ = s.writeOut([]byte(s.modes.resetSequence() + "\x1b[H\x1b[2J\x1b[3J"))
	s.modes = modeTracker{}
}

// restoreModes switches off, on the way out, the terminal modes a program
// in the session may have left on, so the user's shell gets its terminal
// back as it was.
func (s *session) restoreModes() {
	if !s.outIsTerm {
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	// Through the predictor, stopped: a guess still shown is taken back.
	s.stopPredicting()
	_, _ = s.writeOut([]byte(s.modes.resetSequence()))
}

// trackingWriter writes session output to the terminal, noting the modes
// it switches.
type trackingWriter struct{ s *session }

func (w trackingWriter) Write(p []byte) (int, error) {
	w.s.outMu.Lock()
	defer w.s.outMu.Unlock()
	return w.s.writeOut(p)
}

var errDetach = errors.New("detach")

// relayInput copies local input to the session until the detach
// sequence (errDetach), the end of input, or an error.
func (s *session) relayInput(in io.Reader, c *client.Client) error {
	buf := make([]byte, 4096)
	var send []byte
	prefixed := false // the last byte was detachPrefix
	for {
		n, err := in.Read(buf)
		send = send[:0]
		for _, b := range buf[:n] {
			switch {
			case prefixed && b == detachKey:
				if len(send) > 0 && !s.view {
					_, _ = c.Write(send)
				}
				return errDetach
			case prefixed && b == detachPrefix:
				send = append(send, detachPrefix)
				prefixed = false
			case prefixed:
				send = append(send, detachPrefix, b)
				prefixed = false
			case b == detachPrefix:
				prefixed = true
			default:
				send = append(send, b)
			}
		}
		if s.view {
			// A viewer's keys go nowhere but the detach sequence; the
			// server would ignore them anyway.
			send = send[:0]
		}
		if len(send) > 0 {
			s.predictTyped(send)
			if _, werr := c.Write(send); werr != nil {
				return xerrors.Errorf("send input: %w", werr)
			}
		}
		if err != nil {
			return err
		}
	}
}

// input is standard input opened so that a blocked read can be ended:
// the descriptor is switched to non-blocking mode, which lets Go's poller
// apply a read deadline, and switched back by close.
type input struct {
	f             *os.File
	interruptible bool
	restoreFlags  func()
}

func openInput(fd int) (*input, error) {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, xerrors.Errorf("get stdin flags: %w", err)
	}
	in := &input{restoreFlags: func() {}}
	if flags&unix.O_NONBLOCK == 0 {
		if err := unix.SetNonblock(fd, true); err == nil {
			// The flag belongs to the open file, shared with the shell
			// that started us: it must be put back on every exit path.
			in.restoreFlags = func() { _ = unix.SetNonblock(fd, false) }
		}
	}
	// A second *os.File on the same descriptor, which os.NewFile makes
	// pollable because the descriptor is now non-blocking. It is never
	// closed: that would close standard input.
	in.f = os.NewFile(uintptr(fd), "stdin")
	in.interruptible = in.f.SetReadDeadline(time.Time{}) == nil
	return in, nil
}

// stop ends a read in progress, if the descriptor allows it.
func (in *input) stop() {
	if in.interruptible {
		_ = in.f.SetReadDeadline(time.Now())
	}
}
