package reconnectingpty

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// The screen backend keeps each session's program inside a GNU screen
// daemon and attaches every connection as a screen client of its own, on a
// PTY of its own. A reattach therefore repaints the program's current
// screen from screen's model of it, however much output scrolled past
// while nobody was attached, which a byte replay cannot do for full-screen
// programs.
//
// Everything lives in one directory per Server, created on first use with
// mode 0700 and removed by Shutdown:
//
//	rpty-screen-XXXX/
//	  screenrc           the configuration every daemon and client reads
//	  owner              the server process's PID and start time (see removeStaleScreenDirs)
//	  sock/NAME/         the session's SCREENDIR: its daemon's socket, "PID.NAME"
//	  NAME.gate          FIFO that holds the program until a client is attached
//	  NAME.pid           the wrapper's PID, which leads the window's session
//	  NAME.exit          the program's exit status, written by the wrapper
//
// NAME is "r" plus a per-server counter plus the start of the session UUID,
// short enough that the socket path stays far below the ~100-byte limit of
// a Unix socket address.

// screenConfig is the screenrc every daemon and client of the server reads.
// Each line is there for a reason:
//
//   - startup_message off, msgwait 0, msgminwait 0: screen must not draw
//     anything of its own over the program, nor delay it.
//   - deflogin off: no utmp entries (and no "could not write utmp" message).
//   - altscreen on: full-screen programs get an alternate screen, and the
//     shell's screen comes back when they exit.
//   - termcapinfo xterm* ti@:te@: the outer terminal stays on its normal
//     screen, so its mouse wheel scrolls its own scrollback.
//   - defutf8 on (and -U on every invocation): windows and displays are
//     UTF-8 whatever the locale; without it screen mangles glyphs like ❯.
//   - defnonblock on: a display whose client stops reading is skipped, not
//     waited for, so it never freezes the window for the other clients.
//   - defflow off: ^S and ^Q reach the program (the window's own line
//     discipline still applies IXON, exactly like the buffered backend).
//   - term screen-256color: programs inside see 256 colours.
//   - escape ^]]: the command key is Ctrl-] instead of Ctrl-A, which shells
//     and editors need. Clients never reach it either: input is escaped on
//     the way in (see escapeScreenInput), so every byte reaches the program.
const screenConfig = `# Written by the reconnecting PTY server; removed when it shuts down.
startup_message off
msgwait 0
msgminwait 0
deflogin off
altscreen on
termcapinfo xterm* ti@:te@
defutf8 on
defnonblock on
defflow off
term screen-256color
escape ^]]
`

// screenEscape is the command key configured in screenConfig; typing it
// followed by screenEscapeLiteral sends the key itself to the program.
const (
	screenEscape        = 0x1d // Ctrl-]
	screenEscapeLiteral = ']'
)

// screenWrapper runs the session's program inside the screen window. It
// records its PID (it leads the window's terminal session, so everything the
// program starts can be found from it), then waits at the gate until the
// first client is attached, so that nothing is drawn before anyone can see
// it. The gate says the client's size: screen creates a detached window at
// 80x24 and resizes it when the client attaches, so the wrapper waits until
// its terminal has that size and clears the screen (screen keeps a grown
// window's old rows at the bottom, which would push the program's first
// line down) before it runs the program at the right size (it waits at
// least 10 s for that: on a loaded machine the resize can take seconds,
// and a program started at 80x24 would stay there). It records the
// program's exit status last. SIGHUP, SIGINT and SIGQUIT are caught rather
// than ignored, so the program still gets the default dispositions while
// the wrapper survives a Ctrl-C to record the status, and a hangup to reap
// the program instead of orphaning it.
const screenWrapper = `exitf=$1 pidf=$2 gate=$3
shift 3
echo $$ >"$pidf"
read rows cols _ <"$gate" || exit 0
i=0
while [ "$(stty size 2>/dev/null)" != "$rows $cols" ] && [ $i -lt 500 ]; do
	sleep 0.02
	i=$((i + 1))
done
printf '\033[H\033[2J'
trap : HUP INT QUIT
"$@"
echo $? >"$exitf"
`

const (
	// screenReadyTimeout bounds how long a new daemon may take to answer.
	screenReadyTimeout = 10 * time.Second
	// screenAttachTimeout bounds how long a client may take to draw.
	screenAttachTimeout = 10 * time.Second
	// screenCommandTimeout bounds one screen -Q or -X command.
	screenCommandTimeout = 5 * time.Second
	// screenClientGrace is how long an attachment whose client exited waits
	// for the daemon to be gone before it concludes the client died alone.
	// Clients exit only as the daemon does, but on a loaded machine the
	// daemon can take seconds to follow.
	screenClientGrace = 5 * time.Second
	// screenFinishGrace is how long a connection whose session ended waits
	// for its client's last output and exit before giving up on it.
	screenFinishGrace = time.Second
)

// screenHost owns what the screen backend shares between the sessions of
// one Server: the screen binary's path and the server's directory.
type screenHost struct {
	srv *Server

	lookOnce sync.Once
	path     string // absolute path of the screen binary, if found
	found    bool
	// deathArgs run a command with SIGKILL as its parent death signal,
	// when setpriv(1) is installed; see start.
	deathArgs []string

	mu      sync.Mutex
	dir     string // created on first start, removed by cleanup
	cleaned bool
	next    uint64 // makes session names unique within the server
}

func newScreenHost(s *Server) *screenHost { return &screenHost{srv: s} }

// available reports whether the configured screen binary exists; it is
// looked up once per server.
func (h *screenHost) available() bool {
	h.lookOnce.Do(func() {
		h.path, h.found = lookScreen(h.srv.cfg.ScreenPath)
		if p, err := exec.LookPath("setpriv"); err == nil {
			h.deathArgs = []string{p, "--pdeathsig", "KILL"}
		}
	})
	return h.found
}

// screenDirMaxLen keeps the socket path, dir + "/sock/PID.NAME", well below
// the ~108 bytes of a Unix socket address.
const screenDirMaxLen = 60

// prepare creates the server's directory on first use and returns it with a
// fresh session name.
func (h *screenHost) prepare(id uuid.UUID) (dir, name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cleaned {
		return "", "", ErrServerClosed
	}
	if h.dir == "" {
		base := os.TempDir()
		if len(base) > screenDirMaxLen-20 {
			base = "/tmp"
		}
		removeStaleScreenDirs(base)
		d, err := os.MkdirTemp(base, "rpty-screen-")
		if err != nil {
			return "", "", xerrors.Errorf("create screen directory: %w", err)
		}
		// screen refuses a SCREENDIR anyone else can read.
		if err := os.Mkdir(filepath.Join(d, "sock"), 0o700); err != nil {
			_ = os.RemoveAll(d)
			return "", "", xerrors.Errorf("create screen socket directory: %w", err)
		}
		if err := os.WriteFile(filepath.Join(d, "screenrc"), []byte(screenConfig), 0o600); err != nil {
			_ = os.RemoveAll(d)
			return "", "", xerrors.Errorf("write screenrc: %w", err)
		}
		if err := os.WriteFile(filepath.Join(d, screenOwnerFile), []byte(processIdentity(os.Getpid())), 0o600); err != nil {
			_ = os.RemoveAll(d)
			return "", "", xerrors.Errorf("write screen directory owner: %w", err)
		}
		h.dir = d
	}
	h.next++
	return h.dir, "r" + strconv.FormatUint(h.next, 10) + "-" + id.String()[:8], nil
}

// cleanup removes the server's directory. The server calls it once every
// session is gone; later starts fail.
func (h *screenHost) cleanup() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleaned = true
	if h.dir != "" {
		_ = os.RemoveAll(h.dir)
		h.dir = ""
	}
}

// screenSession is one session: a screen daemon running the program, and
// a screen client per attached connection.
type screenSession struct {
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
}

// start creates a session's daemon and waits until it answers. The daemon
// runs the command through screenWrapper; the first attach releases it.
func (h *screenHost) start(id uuid.UUID, cmd *exec.Cmd, height, width uint16, logger slog.Logger) (rpty, error) {
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
	stderr := &cappedBuffer{max: 4 << 10}
	daemon.Stdout = stderr
	daemon.Stderr = stderr
	// Should anything the daemon started keep its output pipe open, Wait
	// must still return once the daemon itself is gone.
	daemon.WaitDelay = time.Second
	if err := h.srv.startProcess(daemon); err != nil {
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
		return fail(xerrors.Errorf("start screen daemon: %w (output: %q)", err, stderr.String()))
	}
	s.logger = s.logger.With(slog.F("pid", daemon.Process.Pid))
	go s.run()
	return s, nil
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
func (s *screenSession) attach(c *conn, height, width uint16) (attachment, error) {
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
	}
	// The connection is left alone: the server retries with it.
	a.stop()
	// A client that could not attach because the daemon is on its way out
	// (the program exited) met an ended session, not a failure; the daemon
	// may take a moment to be reaped after its socket is gone.
	grace := time.NewTimer(screenFinishGrace)
	defer grace.Stop()
	select {
	case <-s.daemonDone:
		return nil, errSessionEnded
	case <-grace.C:
	}
	s.srv.metrics.errors.WithLabelValues(errorTypeScreen).Inc()
	return nil, xerrors.New("screen client did not attach")
}

func (s *screenSession) remove(a *screenAttachment) {
	s.mu.Lock()
	delete(s.atts, a)
	s.mu.Unlock()
}

// screenAttachment is one connection's screen client and the goroutines
// that serve it: relay copies the client's terminal to the connection, and
// waitClient reaps the client.
type screenAttachment struct {
	s      *screenSession
	c      *conn
	client *exec.Cmd
	ptmx   *os.File

	drawn      chan struct{} // closed when the client has drawn the screen
	refused    chan struct{} // closed when the client printed an error instead
	confirmed  chan struct{} // closed when attach succeeds: output may flow
	clientDone chan struct{} // closed when the client is reaped
	waiterDone chan struct{} // closed when waitClient returns
	readEnded  chan struct{} // closed when the relay has read all it will
	relayDone  chan struct{}

	mu       sync.Mutex
	detached bool
	final    disconnect // set before finishCh is closed
	finished bool
	// finishBy is when a finished connection stops waiting for its client:
	// one that attached as the daemon went away may neither write nor exit.
	finishBy time.Time
	finishCh chan struct{}

	detachOnce sync.Once
	detachCh   chan struct{}
}

// waitClient reaps the client. A client that died on its own, while the
// daemon lives, leaves its terminal open in the daemon, which would keep
// the relay from ever reading EOF: once the relay has had time to read
// what the client left, the terminal is closed under it.
func (a *screenAttachment) waitClient() {
	defer close(a.waiterDone)
	awaitExit(a.client.Process.Pid)
	_ = a.client.Wait()
	close(a.clientDone)
	timer := time.NewTimer(screenClientGrace)
	defer timer.Stop()
	select {
	case <-a.readEnded:
	case <-a.detachCh:
	case <-timer.C:
		select {
		case <-a.s.daemonDone:
			// The session ended: the daemon let go of the terminal, and
			// the relay reads the rest at its connection's pace.
		default:
			_ = a.ptmx.Close()
		}
	}
}

// relay copies the client's output to the connection until the client's
// terminal closes, then ends the connection once the session's reason is
// known. The screen daemon writes to each client's terminal without
// waiting for slow ones, so a connection that does not read holds up only
// this goroutine.
func (a *screenAttachment) relay() {
	defer close(a.relayDone)
	buf := make([]byte, readSize)
	var filter chromeFilter
	writing := true
	first := true
	for {
		finishBy := a.setReadDeadline(filter.holding())
		n, err := a.ptmx.Read(buf)
		if n > 0 {
			if first {
				first = false
				// Screen opens every display by initialising the terminal,
				// which starts with an escape sequence; anything else is
				// the client explaining why it could not attach.
				if buf[0] != 0x1b {
					close(a.refused)
					writing = false
				} else {
					close(a.drawn)
					// Nothing reaches the connection before attach has
					// decided to keep this client.
					select {
					case <-a.confirmed:
					case <-a.detachCh:
						writing = false
					}
				}
			}
			writing = a.send(filter.push(buf[:n]), writing)
		}
		if xerrors.Is(err, os.ErrDeadlineExceeded) {
			if !finishBy.IsZero() && !time.Now().Before(finishBy) {
				// The session is over and this client is stuck.
				_ = a.client.Process.Kill()
				break
			}
			writing = a.send(filter.flush(), writing)
			continue
		}
		if err != nil {
			break
		}
	}
	close(a.readEnded)
	// What is held back now is the daemon's goodbye to its displays.
	writing = a.send(filter.end(), writing)

	timer := time.NewTimer(screenClientGrace)
	defer timer.Stop()
	select {
	case <-a.finishCh:
	case <-a.detachCh:
		return
	case <-timer.C:
		select {
		case <-a.s.daemonDone:
			// The session is ending; its reason is on the way.
			select {
			case <-a.finishCh:
			case <-a.detachCh:
				return
			}
		default:
			a.s.srv.metrics.errors.WithLabelValues(errorTypeScreen).Inc()
			a.s.logger.Warn(context.Background(), "screen client exited while its session lives")
			a.s.remove(a)
			a.c.end(disconnect{reason: DisconnectStartFailed, detail: "screen client exited while the session lives"})
			// The handler sees the read fail and closes the connection.
			a.c.interrupt()
			return
		}
	}
	a.mu.Lock()
	detached, d := a.detached, a.final
	a.mu.Unlock()
	if detached {
		return
	}
	a.c.end(d)
	if writing {
		a.c.closeWrite()
	} else {
		a.c.interrupt()
	}
}

// setReadDeadline sets the relay's read deadline: soon while the chrome
// filter holds bytes back, and no later than finishBy once the session is
// over. It runs under a.mu, as finish does, so that neither undoes the
// other's deadline. It returns finishBy.
func (a *screenAttachment) setReadDeadline(holding bool) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var deadline time.Time
	if holding {
		deadline = time.Now().Add(screenChromeHold)
	}
	if !a.finishBy.IsZero() && (deadline.IsZero() || a.finishBy.Before(deadline)) {
		deadline = a.finishBy
	}
	_ = a.ptmx.SetReadDeadline(deadline)
	return a.finishBy
}

// send writes p to the connection unless writing has stopped; it reports
// whether writing goes on.
func (a *screenAttachment) send(p []byte, writing bool) bool {
	if !writing || len(p) == 0 {
		return writing
	}
	if _, err := a.c.Write(p); err != nil {
		a.c.failWrite(err)
		return false
	}
	// Screen gives no access to the program's own output stream, so this
	// counts what each connection is sent, repaints included.
	a.s.srv.metrics.outputBytes.Add(float64(len(p)))
	return true
}

// finish ends the connection with d once the client's output is written.
func (a *screenAttachment) finish(d disconnect) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished || a.detached {
		return
	}
	a.finished = true
	a.final = d
	close(a.finishCh)
	a.finishBy = time.Now().Add(screenFinishGrace)
	_ = a.ptmx.SetReadDeadline(a.finishBy)
}

func (a *screenAttachment) write(p []byte) error {
	if _, err := a.ptmx.Write(escapeScreenInput(p)); err != nil {
		return xerrors.Errorf("write to screen client: %w", err)
	}
	return nil
}

// escapeScreenInput doubles the command key as screen's literal sequence, so
// that input can never drive screen itself (detach it, kill the window):
// every byte a client types reaches the program.
func escapeScreenInput(p []byte) []byte {
	n := bytes.Count(p, []byte{screenEscape})
	if n == 0 {
		return p
	}
	out := make([]byte, 0, len(p)+n)
	for _, b := range p {
		out = append(out, b)
		if b == screenEscape {
			out = append(out, screenEscapeLiteral)
		}
	}
	return out
}

func (a *screenAttachment) resize(height, width uint16) error {
	if err := resizePTY(a.ptmx, height, width); err != nil {
		return xerrors.Errorf("resize screen client: %w", err)
	}
	return nil
}

// detach stops output to the connection and ends the client only: the
// hangup makes it tell the daemon it is leaving, and the session lives on.
func (a *screenAttachment) detach() {
	// A relay blocked on a client that stopped reading needs the interrupt;
	// the connection's handler closes it.
	a.c.interrupt()
	a.stop()
}

// stop ends the client and waits for the attachment's goroutines, without
// touching the connection.
func (a *screenAttachment) stop() {
	a.detachOnce.Do(func() {
		a.s.remove(a)
		a.mu.Lock()
		a.detached = true
		a.mu.Unlock()
		close(a.detachCh)
		_ = a.client.Process.Signal(syscall.SIGHUP)
		select {
		case <-a.clientDone:
		case <-time.After(hangupGrace):
			_ = a.client.Process.Kill()
			<-a.clientDone
		}
		// The daemon may still hold the client's terminal open; closing
		// our side ends the relay's read regardless.
		_ = a.ptmx.Close()
		<-a.relayDone
		<-a.waiterDone
	})
}

// screenChrome is what a screen daemon writes to every display as it exits,
// after escape sequences that reset the terminal and move to its last line
// (in a write of their own). None of it is the program's output, so the
// relay holds back anything that may be its start, and drops it when the
// client's terminal closes right after it.
const screenChrome = "\r\n[screen is terminating]\r\n"

// chromeBytes is screenChrome for byte comparisons; it is never written.
var chromeBytes = []byte(screenChrome)

// screenChromeHold is how long held-back output waits for the rest of the
// chrome: screen writes it in consecutive writes, so bytes that see nothing
// follow them were the program's.
const screenChromeHold = 200 * time.Millisecond

// trailingEscapes matches the terminal-reset sequences screen writes before
// screenChrome.
var trailingEscapes = regexp.MustCompile(`(?:\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x1b\([0-9A-Z])+$`)

// chromeFilter removes screenChrome, and the escape sequences just before
// it, from the end of a client's output.
type chromeFilter struct {
	held    []byte
	sentEOL bool // the last bytes let through were a line ending
}

// push returns the part of the output so far that cannot be the start of
// the chrome; the rest is held until more output, flush or end.
func (f *chromeFilter) push(p []byte) []byte {
	data := p
	if len(f.held) > 0 {
		data = append(f.held, p...)
		f.held = nil
	}
	hold := len(data)
	switch {
	case f.sentEOL && len(data) <= len(screenChrome)-2 && bytes.HasPrefix(chromeBytes[2:], data):
		// The chrome's line ending went out with the last output.
		hold = 0
	default:
		l := min(len(screenChrome), len(data))
		for ; l >= 2; l-- {
			if bytes.HasSuffix(data, chromeBytes[:l]) {
				break
			}
		}
		if l < 2 {
			break
		}
		start := len(data) - l
		window := max(0, start-256)
		if loc := trailingEscapes.FindIndex(data[window:start]); loc != nil {
			hold = window + loc[0]
		} else if l > 2 {
			// A bare line ending is too common to hold back.
			hold = start
		}
	}
	f.held = bytes.Clone(data[hold:])
	return f.let(data[:hold])
}

func (f *chromeFilter) let(p []byte) []byte {
	if len(p) > 0 {
		f.sentEOL = bytes.HasSuffix(p, []byte("\r\n"))
	}
	return p
}

// holding reports whether output is held back.
func (f *chromeFilter) holding() bool { return len(f.held) > 0 }

// flush lets held output through: nothing followed it in time.
func (f *chromeFilter) flush() []byte {
	held := f.held
	f.held = nil
	return f.let(held)
}

// end is called when the output is over: held bytes that end with the
// chrome are dropped, anything else (a prefix the program printed) is
// returned.
func (f *chromeFilter) end() []byte {
	if bytes.HasSuffix(f.held, chromeBytes[2:]) {
		f.held = nil
		return nil
	}
	return f.flush()
}

// cappedBuffer keeps the first max bytes written to it, for error messages.
type cappedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
