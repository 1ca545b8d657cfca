package reconnectingpty

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty/internal/resume"
)

// The screen backend keeps each session's program inside a GNU screen
// daemon and attaches every connection as a screen client of its own, on a
// PTY of its own. A reattach therefore repaints the program's current
// screen from screen's model of it, however much output scrolled past
// while nobody was attached, which a byte replay cannot do for full-screen
// programs.

// screenSession is one session: a screen daemon running the program, and
// a screen client per attached connection.
type screenSession struct {
	outputClock // for SessionInfo.LastOutput: what attached clients are sent

	srv    *Server
	logger slog.Logger
	path   string // the screen binary
	dir    string
	rc     string
	sock   string // "PID.NAME", how clients and commands address the daemon
	env    []string
	files  []string // per-session files, removed at the end
	// sockDir is the session's SCREENDIR, removed after its files.
	sockDir string

	exitFile, pidFile string
	gate              *os.File // held open (read-write) for the session's life

	daemon     *exec.Cmd
	daemonDone chan struct{}

	attachMu sync.Mutex // serialises attaches
	released bool       // the gate is open; guarded by attachMu

	mu     sync.Mutex
	atts   map[*screenAttachment]struct{}
	ending bool // the daemon is gone: no more attaches

	closeOnce sync.Once
	closeReq  chan struct{}
	closeWhy  disconnect // written before closeReq is closed

	doneCh chan struct{}
	onDone func() // called by run, last
}

// start creates a session's daemon and waits until it answers. The daemon
// runs the command through screenWrapper; the first attach releases it.
// onDone, if set, is called once the session is over.
func (h *screenHost) start(id uuid.UUID, cmd *exec.Cmd, height, width uint16, logger slog.Logger, onDone func()) (rpty, error) {
	// The window takes its size from the first client, which attaches
	// before the program is released, so height and width are not needed.
	_, _ = height, width
	if !h.available() {
		return nil, xerrors.Errorf("screen %q not found", h.srv.cfg.ScreenPath)
	}
	dir, name, err := h.prepare(id)
	if err != nil {
		return nil, err
	}
	s := &screenSession{
		srv:        h.srv,
		logger:     logger.With(slog.F("backend", string(BackendScreen)), slog.F("screen_session", name)),
		path:       h.path,
		dir:        dir,
		rc:         filepath.Join(dir, "screenrc"),
		exitFile:   filepath.Join(dir, name+".exit"),
		pidFile:    filepath.Join(dir, name+".pid"),
		atts:       map[*screenAttachment]struct{}{},
		daemonDone: make(chan struct{}),
		closeReq:   make(chan struct{}),
		doneCh:     make(chan struct{}),
		onDone:     onDone,
	}
	gatePath := filepath.Join(dir, name+".gate")
	s.files = []string{s.exitFile, s.pidFile, gatePath}
	// Each session's daemon has a socket directory of its own, so that a
	// session's programs do not find (and drive) the other sessions'
	// daemons by listing their SCREENDIR. Same-user processes can still
	// reach them on purpose: the server's directory is only 0700.
	s.sockDir = filepath.Join(dir, "sock", name)
	if err := os.Mkdir(s.sockDir, 0o700); err != nil {
		return nil, xerrors.Errorf("create screen socket directory: %w", err)
	}
	s.env = screenEnv(cmd.Env, s.sockDir)

	fail := func(err error) (rpty, error) {
		h.srv.metrics.errors.WithLabelValues(errorTypeScreen).Inc()
		if s.gate != nil {
			_ = s.gate.Close()
		}
		s.removeFiles()
		return nil, err
	}
	if err := unix.Mkfifo(gatePath, 0o600); err != nil {
		return fail(xerrors.Errorf("create screen gate: %w", err))
	}
	// Opening a FIFO read-write does not block, and holding a writer open
	// means the wrapper's read waits for the release rather than for EOF.
	s.gate, err = os.OpenFile(gatePath, os.O_RDWR, 0)
	if err != nil {
		return fail(xerrors.Errorf("open screen gate: %w", err))
	}

	// The daemon dies with the server (procStarter); the wrapper dies with
	// the daemon and the program with the wrapper through setpriv's parent
	// death signal, so that a server killed outright leaves none of them
	// behind. (A window's hangup signals only the wrapper, whose trap runs
	// only once the program has exited.)
	args := []string{"-c", s.rc, "-U", "-S", name, "-D", "-m"}
	args = append(args, h.deathArgs...)
	args = append(args, "/bin/sh", "-c", screenWrapper, "rpty-screen", s.exitFile, s.pidFile, gatePath)
	args = append(args, h.deathArgs...)
	args = append(args, programArgs(cmd)...)
	daemon := exec.Command(h.path, args...)
	daemon.Env = s.env
	daemon.Dir = cmd.Dir
	// The daemon leads a session of its own so that it and anything it
	// leaves behind can be killed as one.
	daemon.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cmd.SysProcAttr != nil {
		daemon.SysProcAttr.Credential = cmd.SysProcAttr.Credential
	}
	// The daemon's own output goes to a file, not a pipe: a pipe's
	// reading end would not survive an upgrade's exec, and a daemon
	// writing to it after would get EPIPE.
	outPath := filepath.Join(dir, name+".out")
	s.files = append(s.files, outPath)
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fail(xerrors.Errorf("create screen daemon output: %w", err))
	}
	daemon.Stdout = out
	daemon.Stderr = out
	err = h.srv.startProcess(daemon)
	_ = out.Close() // the daemon has its own
	if err != nil {
		return fail(xerrors.Errorf("start screen daemon: %w", err))
	}
	s.daemon = daemon
	// With -D -m screen does not fork: this process is the daemon, and its
	// socket is named after its PID.
	s.sock = strconv.Itoa(daemon.Process.Pid) + "." + name
	s.files = append(s.files, filepath.Join(s.sockDir, s.sock))
	go func() {
		defer close(s.daemonDone)
		awaitExit(daemon.Process.Pid)
		_ = daemon.Wait()
	}()

	if err := s.waitReady(); err != nil {
		select {
		case <-s.daemonDone:
		default:
			// Not reaped yet, so the PID is still the daemon's.
			s.srv.procs.killSession(daemon.Process.Pid, syscall.SIGKILL)
			<-s.daemonDone
		}
		s.killWindow(false)
		return fail(xerrors.Errorf("start screen daemon: %w (output: %q)", err, readCapped(outPath, 4<<10)))
	}
	s.logger = s.logger.With(slog.F("pid", daemon.Process.Pid))
	go s.run()
	return s, nil
}

// readCapped returns up to max bytes from the start of the file at path.
func readCapped(path string, max int) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, max)
	n, _ := io.ReadFull(f, b)
	return b[:n]
}

// programArgs is the command line the wrapper runs. A login shell is asked
// for with a leading dash in argv[0], which the wrapper cannot pass on, so
// it becomes the -l flag that sh, bash, zsh and their kin all accept.
func programArgs(cmd *exec.Cmd) []string {
	args := []string{cmd.Path}
	if len(cmd.Args) > 0 {
		if strings.HasPrefix(cmd.Args[0], "-") {
			args = append(args, "-l")
		}
		args = append(args, cmd.Args[1:]...)
	}
	return args
}

// screenEnv is the environment of the daemon (and so of the program) and of
// every client: the command's, with the server's SCREENDIR and without any
// outer screen's session variable, which would make screen nest.
func screenEnv(env []string, sockDir string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "STY" || k == "SCREENDIR" || k == "WINDOW" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "SCREENDIR="+sockDir)
}

// waitReady polls the daemon with a command that changes nothing until it
// answers, it exits, or the deadline passes.
func (s *screenSession) waitReady() error {
	deadline := time.NewTimer(screenReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.command("-Q", "select", ".")
		if err == nil {
			return nil
		}
		select {
		case <-s.daemonDone:
			return xerrors.Errorf("daemon exited before answering: %w", err)
		case <-deadline.C:
			return xerrors.Errorf("daemon did not answer within %s: %w", screenReadyTimeout, err)
		case <-tick.C:
		}
	}
}

// command runs screen with args against this session's daemon.
func (s *screenSession) command(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), screenCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.path, append([]string{"-S", s.sock}, args...)...)
	cmd.Env = s.env
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := s.srv.startProcess(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return xerrors.Errorf("screen %s: %w: %q", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func (s *screenSession) done() <-chan struct{} { return s.doneCh }

func (s *screenSession) pid() int { return s.daemon.Process.Pid }

func (s *screenSession) close(d disconnect) {
	s.closeOnce.Do(func() {
		s.closeWhy = d
		close(s.closeReq)
	})
}

// run ends the session when the daemon exits (the program ended) or close
// is called (screen is told to quit, then killed), makes sure nothing the
// program started survives, and ends every attachment with the reason.
func (s *screenSession) run() {
	if s.onDone != nil {
		defer s.onDone()
	}
	defer close(s.doneCh)
	select {
	case <-s.daemonDone:
	case <-s.closeReq:
		s.quit()
	}
	// Whatever the program left running in its window's session is not
	// wanted either.
	s.killWindow(false)
	_ = s.gate.Close()

	var d disconnect
	select {
	case <-s.closeReq:
		d = s.closeWhy
	default:
		code, err := s.exitCode()
		if err != nil {
			s.logger.Warn(context.Background(), "screen session ended without an exit status", slog.Error(err))
			code = 1
		}
		d = disconnect{reason: DisconnectProcessExited, exitCode: code, detail: "exit code " + strconv.Itoa(code)}
	}
	s.removeFiles()

	s.mu.Lock()
	s.ending = true
	atts := s.atts
	s.atts = nil
	s.mu.Unlock()
	for a := range atts {
		a.finish(d)
	}
	s.logger.Debug(context.Background(), "screen session ended",
		slog.F("reason", string(d.reason)), slog.F("exit_code", d.code()))
}

// quit ends the session from the inside out, so that each process is
// reaped by its own parent rather than orphaned: the window's session is
// hung up (the wrapper outlives the program to reap it), which closes the
// only window and so ends the daemon. Should that not happen, screen is
// told to quit, and then killed.
func (s *screenSession) quit() {
	// A wrapper still at the gate reads EOF and exits.
	_ = s.gate.Close()
	if s.killWindow(true) {
		select {
		case <-s.daemonDone:
			return
		case <-time.After(hangupGrace):
		}
	}
	if err := s.command("-X", "quit"); err != nil {
		s.logger.Debug(context.Background(), "screen quit", slog.Error(err))
	}
	select {
	case <-s.daemonDone:
	case <-time.After(hangupGrace):
		s.srv.procs.killSession(s.daemon.Process.Pid, syscall.SIGKILL)
		<-s.daemonDone
	}
}

// killWindow kills what is left of the window's terminal session, which
// the wrapper leads: at once, or after a hangup and a grace period. It
// reports whether the window had started.
func (s *screenSession) killWindow(hangup bool) bool {
	b, err := os.ReadFile(s.pidFile)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return false
	}
	if hangup && s.srv.procs.sessionAlive(pid) {
		s.srv.procs.killSession(pid, syscall.SIGHUP)
		deadline := time.Now().Add(hangupGrace)
		for s.srv.procs.sessionAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Once the session is empty the PID may be reused: no signal then.
	if s.srv.procs.sessionAlive(pid) {
		s.srv.procs.killSession(pid, syscall.SIGKILL)
	}
	return true
}

func (s *screenSession) exitCode() (int, error) {
	b, err := os.ReadFile(s.exitFile)
	if err != nil {
		return 0, xerrors.Errorf("read exit status: %w", err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, xerrors.Errorf("parse exit status %q: %w", b, err)
	}
	return code, nil
}

func (s *screenSession) removeFiles() {
	for _, f := range s.files {
		_ = os.Remove(f)
	}
	if s.sockDir != "" {
		_ = os.Remove(s.sockDir)
	}
}

// attach starts a screen client for c on a PTY of the connection's size and
// returns once it has drawn. Attaches are serialised: the first one opens
// the gate that starts the program, at the size that client gave the
// window.
//
// A resuming connection always gets a reset: screen hides the program's
// output stream, so there is no offset to resume from. Its header says
// offset 0 and len 0, and the client's own stream follows, starting with
// screen's repaint.
func (s *screenSession) attach(c *conn, req attachRequest) (attachment, error) {
	height, width := req.height, req.width
	s.attachMu.Lock()
	defer s.attachMu.Unlock()
	s.mu.Lock()
	ending := s.ending
	s.mu.Unlock()
	if ending {
		return nil, errSessionEnded
	}

	client := exec.Command(s.path, "-c", s.rc, "-U", "-x", s.sock)
	client.Env = s.env
	client.Dir = s.dir
	// Started at the connection's size: a client resized right after
	// attaching makes screen pad the window from the top.
	ptmx, err := startPTY(client, height, width, s.srv.startProcess)
	if err != nil {
		s.srv.metrics.errors.WithLabelValues(errorTypeScreen).Inc()
		return nil, xerrors.Errorf("start screen client: %w", err)
	}
	a := &screenAttachment{
		s:          s,
		c:          c,
		client:     client,
		ptmx:       ptmx,
		drawn:      make(chan struct{}),
		refused:    make(chan struct{}),
		confirmed:  make(chan struct{}),
		clientDone: make(chan struct{}),
		waiterDone: make(chan struct{}),
		readEnded:  make(chan struct{}),
		relayDone:  make(chan struct{}),
		finishCh:   make(chan struct{}),
		detachCh:   make(chan struct{}),
	}
	a.header = req.first
	if req.resume {
		a.header = resume.AppendHeader(a.header, resume.Header{Mode: resume.Reset})
	}
	go a.waitClient()
	go a.relay()

	s.mu.Lock()
	if !s.ending {
		s.atts[a] = struct{}{}
	}
	ending = s.ending
	s.mu.Unlock()
	if ending {
		a.stop()
		return nil, errSessionEnded
	}

	timer := time.NewTimer(screenAttachTimeout)
	defer timer.Stop()
	grace := screenClientGrace
	select {
	case <-a.drawn:
		if !s.released {
			s.released = true
			size := strconv.Itoa(int(height)) + " " + strconv.Itoa(int(width)) + "\n"
			if _, err := s.gate.Write([]byte(size)); err != nil {
				s.logger.Warn(context.Background(), "release screen gate", slog.Error(err))
			}
		}
		close(a.confirmed)
		return a, nil
	case <-a.refused:
	case <-a.clientDone:
	case <-timer.C:
		grace = 0 // a client that never drew: no reason to wait more
	}
	// The connection is left alone: the server retries with it.
	a.stop()
	// A client refused or gone while the program is exiting is the session
	// ending, once the daemon follows, which on a loaded machine can take
	// a while.
	wait := time.NewTimer(grace)
	defer wait.Stop()
	select {
	case <-s.daemonDone:
		return nil, errSessionEnded
	case <-wait.C:
	}
	s.srv.metrics.errors.WithLabelValues(errorTypeScreen).Inc()
	return nil, xerrors.New("screen client did not attach")
}

func (s *screenSession) remove(a *screenAttachment) {
	s.mu.Lock()
	delete(s.atts, a)
	s.mu.Unlock()
}
