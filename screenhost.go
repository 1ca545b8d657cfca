package reconnectingpty

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// The screen backend keeps everything in one directory per Server, created
// on first use with mode 0700 and removed by Shutdown:
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
