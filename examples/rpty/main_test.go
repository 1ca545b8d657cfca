package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/leakcheck"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m)
}

const waitTimeout = 20 * time.Second

// shellArgs start bash without rc files, so the user's setup cannot change
// prompts or output.
var shellArgs = []string{"--", "bash", "--norc", "--noprofile"}

// buildCLI builds the command into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "rpty")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServer serves the protocol on a loopback port until the test ends.
func startServer(t *testing.T) *rptytest.TrackingListener {
	t.Helper()
	return startServerWith(t, reconnectingpty.Config{})
}

// startServerWith serves with cfg, running bash on the buffered backend.
func startServerWith(t *testing.T, cfg reconnectingpty.Config) *rptytest.TrackingListener {
	t.Helper()
	cfg.Commander = reconnectingpty.LocalCommander{Shell: "/bin/bash"}
	cfg.Backend = reconnectingpty.BackendBuffered
	return rptytest.StartServer(t, cfg)
}

// clearSequence is how rpty clears the screen before a repaint.
const clearSequence = "\x1b[H\x1b[2J"

// cli is the command running on a PTY of its own.
type cli struct {
	t      *testing.T
	ptmx   *os.File
	tty    *os.File
	cmd    *exec.Cmd
	before unix.Termios // the terminal's settings before the command ran

	mu       sync.Mutex
	out      bytes.Buffer
	readDone chan struct{}
	exited   chan struct{}
	waitErr  error
}

func startCLI(t *testing.T, bin string, args ...string) *cli {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	c := &cli{t: t, ptmx: ptmx, tty: tty, cmd: cmd, readDone: make(chan struct{}), exited: make(chan struct{})}
	before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	c.before = *before
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.readDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			c.mu.Lock()
			c.out.Write(buf[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer close(c.exited)
		c.waitErr = cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = cmd.Process.Kill()
			<-c.exited
		}
		// With the command gone, closing our end of the terminal makes
		// reads on the master fail, which ends the reader.
		_ = tty.Close()
		<-c.readDone
		_ = ptmx.Close()
	})
	return c
}

func (c *cli) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *cli) waitFor(s string) {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(c.output(), s) {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %q in output:\n%q", s, c.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cli) typeIn(s string) {
	c.t.Helper()
	if _, err := c.ptmx.Write([]byte(s)); err != nil {
		c.t.Fatalf("type %q: %v", s, err)
	}
}

// waitExit waits for the command to exit and checks its status and that
// it left the terminal as it found it: same settings, blocking input.
func (c *cli) waitExit(wantCode int) {
	c.t.Helper()
	select {
	case <-c.exited:
	case <-time.After(waitTimeout):
		c.t.Fatalf("command did not exit; output:\n%q", c.output())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != wantCode {
		c.t.Fatalf("exit status %d (%v), want %d; output:\n%q", code, c.waitErr, wantCode, c.output())
	}
	after, err := unix.IoctlGetTermios(int(c.tty.Fd()), unix.TCGETS)
	if err != nil {
		c.t.Fatal(err)
	}
	if after.Lflag != c.before.Lflag || after.Iflag != c.before.Iflag || after.Oflag != c.before.Oflag || after.Cflag != c.before.Cflag {
		c.t.Fatalf("terminal settings not restored: before %+v, after %+v", c.before, *after)
	}
	if after.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO {
		c.t.Fatalf("terminal left without canonical mode and echo: lflag %#x", after.Lflag)
	}
	flags, err := unix.FcntlInt(c.tty.Fd(), unix.F_GETFL, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK != 0 {
		c.t.Fatal("terminal left in non-blocking mode")
	}
}

// The tests run a built binary, so the hint names it, not go run.
var reattachRE = regexp.MustCompile(`detached; reattach with: /\S+/rpty --addr (\S+) --id ([0-9a-f-]{36})`)

// TestDetachAndReattach types a command, detaches with Ctrl-\ d, and
// reattaches with the printed ID to find the earlier output replayed and
// the same shell; then exit ends the session and the command.
func TestDetachAndReattach(t *testing.T) {
	bin := buildCLI(t)
	ln := startServer(t)
	addr := ln.Addr().String()

	first := startCLI(t, bin, append([]string{"--addr", addr, "--backend", "buffered"}, shellArgs...)...)
	first.waitFor("bash-")
	first.typeIn("X=same-shell; echo hello-cli\r")
	// "\r" before it: the shell's output line, not the echo of the typed
	// command, which has a space before the word.
	first.waitFor("\rhello-cli\r\n")
	// The size at start, then a resize, which the kernel announces with
	// SIGWINCH.
	first.typeIn("stty size\r")
	first.waitFor("\r24 80\r\n")
	if err := pty.Setsize(first.ptmx, &pty.Winsize{Rows: 31, Cols: 101}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(first.output(), "\r31 101\r\n") {
		if time.Now().After(deadline) {
			t.Fatalf("resize not seen; output:\n%q", first.output())
		}
		// Typed again until it shows: the SIGWINCH may reach the
		// command after the shell ran the first stty.
		first.typeIn("stty size\r")
		time.Sleep(100 * time.Millisecond)
	}
	first.typeIn("\x1cd")
	first.waitExit(0)
	// The reader may still be behind the exited command's last output.
	first.waitFor("reattach with")
	// The terminal's modes were put back; the shell never left the main
	// screen, so rpty does not either (that would move the cursor).
	if out := first.output(); !strings.Contains(out, resetModes) || strings.Contains(out, leaveAltScreen) {
		t.Fatalf("detach did not restore the modes as it should:\n%q", out)
	}
	m := reattachRE.FindStringSubmatch(first.output())
	if m == nil {
		t.Fatalf("no reattach command in output:\n%q", first.output())
	}
	if m[1] != addr {
		t.Fatalf("reattach command has --addr %s, want %s", m[1], addr)
	}

	second := startCLI(t, bin, "--addr", addr, "--id", m[2])
	second.waitFor("\rhello-cli\r\n") // the replay
	second.typeIn("echo again-$X\r")
	second.waitFor("again-same-shell\r\n")
	// Ctrl-\ twice sends one Ctrl-\ (which the remote terminal turns
	// into SIGQUIT, ignored by an interactive bash) and does not detach.
	second.typeIn("\x1c\x1c")
	second.typeIn("echo still-$((3+3))\r")
	second.waitFor("still-6\r\n")
	second.typeIn("exit\r")
	second.waitExit(0)
	second.waitFor("rpty: session ended")
	if ln.Accepted() != 2 {
		t.Fatalf("accepted %d connections, want 2", ln.Accepted())
	}
}

// TestReconnectAfterDrop resets the connection under the command: it
// shows the status line, redials into the same shell, and keeps working.
// SIGTERM then ends it, with the terminal restored and a reattach hint.
func TestReconnectAfterDrop(t *testing.T) {
	bin := buildCLI(t)
	ln := startServer(t)
	addr := ln.Addr().String()

	c := startCLI(t, bin, append([]string{"--addr", addr, "--backend", "buffered"}, shellArgs...)...)
	c.waitFor("bash-")
	c.typeIn("V=kept; echo set-$((1+1))\r")
	c.waitFor("set-2\r\n")

	ln.Drop()
	c.waitFor("connection lost")
	deadline := time.Now().Add(waitTimeout)
	for ln.Accepted() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no redial; output:\n%q", c.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.typeIn("echo got-$V-$((2+2))\r")
	c.waitFor("got-kept-4\r\n")
	// The reconnect resumed: nothing was cleared or repainted.
	if out := c.output(); strings.Contains(out, clearSequence) || strings.Count(out, "set-2\r\n") != 1 {
		t.Fatalf("the reconnect cleared or repeated output:\n%q", out)
	}

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitExit(1)
	c.waitFor("reattach with")
	if !reattachRE.MatchString(c.output()) {
		t.Fatalf("no reattach hint after SIGTERM:\n%q", c.output())
	}
	if !strings.Contains(c.output(), resetModes) {
		t.Fatalf("the terminal's modes were not restored after SIGTERM:\n%q", c.output())
	}
}

// TestReattachAfterTheOutputMovedOnIsAReset: reattaching to a session
// whose first output the server no longer holds gets a reset, and rpty
// clears the terminal before the repaint. A program left on the alternate
// screen is left on it by rpty's exit sequence too.
func TestReattachAfterTheOutputMovedOnIsAReset(t *testing.T) {
	bin := buildCLI(t)
	ln := startServerWith(t, reconnectingpty.Config{BufferSize: 4 << 10, ResumeBufferSize: 8 << 10})
	addr := ln.Addr().String()

	first := startCLI(t, bin, append([]string{"--addr", addr, "--backend", "buffered"}, shellArgs...)...)
	first.waitFor("bash-")
	first.typeIn("seq 1 10000; echo done-$((5*5))\r")
	first.waitFor("done-25\r\n")
	if strings.Contains(first.output(), clearSequence) {
		t.Fatalf("the first attach to a new session cleared the screen:\n%q", first.output())
	}
	first.typeIn("\x1cd")
	first.waitExit(0)
	first.waitFor("reattach with")
	m := reattachRE.FindStringSubmatch(first.output())
	if m == nil {
		t.Fatalf("no reattach command in output:\n%q", first.output())
	}

	second := startCLI(t, bin, "--addr", addr, "--id", m[2])
	second.waitFor("done-25\r\n")
	out := second.output()
	if i := strings.Index(out, clearSequence); i < 0 || i > strings.Index(out, "done-25") {
		t.Fatalf("no clear before the repaint:\n%q", out)
	}
	second.typeIn("printf '\\033[?1049h\\033[?1000h'; echo alt-$((6*7))\r")
	second.waitFor("alt-42\r\n")
	second.typeIn("\x1cd")
	second.waitExit(0)
	second.waitFor("reattach with")
	if out := second.output(); !strings.Contains(out, leaveAltScreen+resetModes) {
		t.Fatalf("detach left the terminal on the alternate screen or with the mouse on:\n%q", out)
	}
}

// TestHelpDocumentsDetachKey: --help names the detach sequence.
func TestHelpDocumentsDetachKey(t *testing.T) {
	bin := buildCLI(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `Detach with Ctrl-\ then d`) {
		t.Fatalf("--help does not document the detach key:\n%s", out)
	}
}

// TestHelpNamesTheBinaryAsRun: a built binary's usage names the binary,
// not "go run", in its own help and in ls's.
func TestHelpNamesTheBinaryAsRun(t *testing.T) {
	bin := buildCLI(t)
	for _, args := range [][]string{{"--help"}, {"ls", "--help"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if strings.Contains(string(out), "go run") || strings.Contains(string(out), "%!") {
			t.Errorf("%v says go run (or a bad verb) for a built binary:\n%s", args, out)
		}
		if !strings.Contains(string(out), bin+" ls") {
			t.Errorf("%v does not name the binary %s:\n%s", args, bin, out)
		}
	}
}

// TestConnectError: a refused first connection is an error, not a retry
// loop, and leaves the terminal as it was.
func TestConnectError(t *testing.T) {
	bin := buildCLI(t)
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := nl.Addr().String()
	_ = nl.Close()
	c := startCLI(t, bin, "--addr", addr)
	c.waitExit(1)
	c.waitFor("rpty: connect to " + addr)
}

func TestReattachHintNamesHowTheUserRanIt(t *testing.T) {
	for arg0, want := range map[string]string{
		"/tmp/go-build1234/b001/exe/rpty": "go run ./examples/rpty",
		"/usr/local/bin/rpty":             "/usr/local/bin/rpty",
		"./rpty":                          "./rpty",
	} {
		if got := selfCommand(arg0); got != want {
			t.Errorf("selfCommand(%q) = %q, want %q", arg0, got, want)
		}
	}
}
