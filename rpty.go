package reconnectingpty

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// errSessionEnded is returned by attach when the session's process has
// exited or it is closing; the caller starts a fresh session instead.
var errSessionEnded = xerrors.New("session ended")

// rpty is a backend's session: one process whose terminal is shared by every
// attached connection.
type rpty interface {
	// attach joins c to the session at the requested size. Output, starting
	// with whatever the backend replays (after a resume header, if req asks
	// to resume), goes to c until the session ends (then c is ended with the
	// session's reason and closed) or detach is called. It returns
	// errSessionEnded once the session is over.
	attach(c *conn, req attachRequest) (attachment, error)
	// close ends the session for d: the process and everything it started
	// is killed and every attachment is ended with d. It does not wait.
	close(d disconnect)
	// done is closed once the process is gone and every goroutine the
	// backend started has returned.
	done() <-chan struct{}
}

// attachRequest is what a connection asks of the session it joins.
type attachRequest struct {
	height, width uint16
	// resume and offset are the init's resume extension: the connection
	// wants a resume header, and has the session's output up to offset.
	resume bool
	offset uint64
}

// attachment is one connection's handle on a session.
type attachment interface {
	// write sends client input to the terminal.
	write(p []byte) error
	// resize sets the terminal size.
	resize(height, width uint16) error
	// detach stops output to the connection and waits for the goroutines
	// serving it. The session lives on. It may be called more than once.
	detach()
}

// CommandRequest is what a client asked for when it created a session.
type CommandRequest struct {
	// ID is the session being created.
	ID uuid.UUID
	// Command is the init's command line; empty means a login shell.
	Command string
	// Container and ContainerUser are passed through from the init.
	Container     string
	ContainerUser string
}

// Commander turns a new session's request into the process to run: its
// path, arguments, user (SysProcAttr), environment and working directory.
// The backend owns the returned command's standard streams and starts it.
// Implementations must be safe for concurrent use.
type Commander interface {
	Command(ctx context.Context, req CommandRequest) (*exec.Cmd, error)
}

// LocalCommander runs commands as the server's own user on the local host.
// An empty Command runs the user's login shell; any other runs through the
// shell with -c. It does not support containers.
type LocalCommander struct {
	// Shell is the shell to use; empty means $SHELL, then /bin/sh.
	Shell string
	// Dir is the working directory; empty means the user's home directory.
	Dir string
}

// Command implements Commander.
func (lc LocalCommander) Command(_ context.Context, req CommandRequest) (*exec.Cmd, error) {
	if req.Container != "" {
		return nil, xerrors.Errorf("container %q requested, but LocalCommander runs no containers", req.Container)
	}
	shell := lc.Shell
	if shell == "" {
		shell = os.Getenv("SHELL")
	}
	if shell == "" {
		shell = "/bin/sh"
	}
	path, err := exec.LookPath(shell)
	if err != nil {
		return nil, xerrors.Errorf("find shell: %w", err)
	}
	// Not CommandContext: the backend, not a context, decides when the
	// session's process ends, and it ends its whole session, not just it.
	var cmd *exec.Cmd
	if req.Command == "" {
		cmd = exec.Command(path)
		// A leading dash in argv[0] is how login(1) asks for a login shell.
		cmd.Args = []string{"-" + filepath.Base(path)}
	} else {
		cmd = exec.Command(path, "-c", req.Command)
	}
	cmd.Dir = lc.Dir
	if cmd.Dir == "" {
		if u, err := user.Current(); err == nil {
			cmd.Dir = u.HomeDir
		}
	}
	return cmd, nil
}

// terminalEnv returns env with what a terminal program needs: a TERM that
// matches what clients emulate and, unless LC_ALL pins the locale, a UTF-8
// character type so programs do not mangle multibyte output.
func terminalEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	var lcAll, lcCtype, lang string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "TERM":
			continue
		case "LC_ALL":
			lcAll = v
		case "LC_CTYPE":
			lcCtype = v
		case "LANG":
			lang = v
		}
		out = append(out, kv)
	}
	out = append(out, "TERM=xterm-256color")
	if lcAll != "" {
		return out
	}
	ctype := lcCtype
	if ctype == "" {
		ctype = lang
	}
	if !isUTF8Locale(ctype) {
		out = append(out, "LC_CTYPE=C.UTF-8")
	}
	return out
}

func isUTF8Locale(l string) bool {
	l = strings.ToLower(l)
	return strings.Contains(l, "utf-8") || strings.Contains(l, "utf8")
}

// session is the registry's entry for one ID: the backend plus the
// inactivity timer, which is the same for every backend. It needs no
// goroutine of its own: the timer and the server's shutdown close the
// backend from callbacks, and the backend calls ended when it is over.
type session struct {
	id      uuid.UUID
	srv     *Server
	logger  slog.Logger
	ready   chan struct{} // closed once rpty or err is set
	rpty    rpty
	err     error
	started time.Time
	// stopShutdown stops the server's shutdown from closing the session,
	// waiting for a close under way.
	stopShutdown func()

	mu       sync.Mutex
	attached int
	timer    *time.Timer // closes the idle session; see timedOut
	over     bool        // the backend ended: the timer does nothing
}

// attach joins c. The connection counts as attached, stopping the
// inactivity timer, from before the backend's attach, which may take a
// while (a screen client must draw), and without holding s.mu meanwhile.
func (s *session) attach(c *conn, req attachRequest) (attachment, error) {
	s.mu.Lock()
	if limit := s.srv.cfg.MaxConnectionsPerSession; over(s.attached, limit) {
		s.mu.Unlock()
		return nil, xerrors.Errorf("%w: MaxConnectionsPerSession: %d connections are attached to the session already", errLimit, limit)
	}
	s.attached++
	s.timer.Stop()
	s.mu.Unlock()
	att, err := s.rpty.attach(c, req)
	if err != nil {
		s.detached()
		return nil, err
	}
	return &sessionAttachment{attachment: att, s: s}, nil
}

func (s *session) detached() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attached--
	if s.attached == 0 && !s.over {
		s.timer.Reset(s.srv.cfg.Timeout)
	}
}

// timedOut closes the session if it is still idle when its timer fires.
// It holds s.mu throughout, so that once ended has set over, no run of it
// does anything.
func (s *session) timedOut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over || s.attached > 0 {
		return
	}
	s.logger.Info(context.Background(), "reconnecting pty session timed out", slog.F("timeout", s.srv.cfg.Timeout.String()))
	s.rpty.close(disconnect{reason: DisconnectSessionTimeout, detail: "no connection for " + s.srv.cfg.Timeout.String()})
}

// ended is called by the backend, last, once it is over: the session is
// unregistered and counted out.
func (s *session) ended() {
	<-s.ready // the backend can end before startSession has returned
	defer s.srv.wg.Done()
	s.mu.Lock()
	s.over = true
	s.timer.Stop()
	s.mu.Unlock()
	s.stopShutdown()
	s.srv.sessionGone()
	s.srv.sessions.CompareAndDelete(s.id, s)
	s.srv.metrics.sessionEnded(time.Since(s.started))
	s.logger.Info(context.Background(), "reconnecting pty session ended", slog.F("duration", time.Since(s.started).String()))
}

// sessionAttachment tells the session when its connection leaves.
type sessionAttachment struct {
	attachment
	s    *session
	once sync.Once
}

func (a *sessionAttachment) detach() {
	a.once.Do(func() {
		a.attachment.detach()
		a.s.detached()
	})
}
