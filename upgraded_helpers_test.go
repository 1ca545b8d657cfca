package reconnectingpty_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
)

// buildUpgraded builds internal/upgraded with marker, the way the tests
// themselves are built (with -race or without), and returns its path.
func buildUpgraded(tb testing.TB, dir, marker string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(dir, "upgraded-"+marker)
	args := []string{"build", "-o", out, "-ldflags", "-X main.marker=" + marker}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./internal/upgraded")...)
	cmd.Dir = filepath.Dir(file)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build the upgrade test daemon: %v\n%s", err, b)
	}
	return out
}

// daemon is a running internal/upgraded and every line it logged.
type daemon struct {
	tb        testing.TB
	cmd       *exec.Cmd
	pid       int
	rpty, ctl string

	mu     sync.Mutex
	lines  []string
	wake   chan struct{}
	logEnd chan struct{}
}

func startDaemon(tb testing.TB, bin string, env ...string) *daemon {
	tb.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	d := &daemon{tb: tb, cmd: cmd, pid: cmd.Process.Pid, wake: make(chan struct{}), logEnd: make(chan struct{})}
	go d.collect(stderr)
	tb.Cleanup(d.stop)
	ready := d.waitLine("READY ", 0)
	for _, f := range strings.Fields(ready)[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "rpty":
			d.rpty = v
		case "ctl":
			d.ctl = v
		}
	}
	return d
}

func (d *daemon) collect(r io.Reader) {
	defer close(d.logEnd)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		d.mu.Lock()
		d.lines = append(d.lines, sc.Text())
		close(d.wake)
		d.wake = make(chan struct{})
		d.mu.Unlock()
	}
}

// waitLine waits for a line starting with prefix at index from or later,
// and returns it.
func (d *daemon) waitLine(prefix string, from int) string {
	d.tb.Helper()
	line, _ := d.waitLineAt(prefix, from)
	return line
}

// waitLineAt is waitLine that also returns the line's index.
func (d *daemon) waitLineAt(prefix string, from int) (string, int) {
	d.tb.Helper()
	timeout := time.After(60 * time.Second)
	for {
		d.mu.Lock()
		for i := from; i < len(d.lines); i++ {
			if strings.HasPrefix(d.lines[i], prefix) {
				line := d.lines[i]
				d.mu.Unlock()
				return line, i
			}
		}
		wake := d.wake
		d.mu.Unlock()
		select {
		case <-wake:
		case <-d.logEnd:
			d.tb.Fatalf("the daemon ended without logging %q:\n%s", prefix, d.log())
		case <-timeout:
			d.tb.Fatalf("the daemon logged no %q in 60s:\n%s", prefix, d.log())
		}
	}
}

// lineCount is how many lines the daemon has logged.
func (d *daemon) lineCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.lines)
}

// logLines returns the lines logged in [from, to).
func (d *daemon) logLines(from, to int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines[from:min(to, len(d.lines))]...)
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// control sends one command to the control port and returns the reply.
func (d *daemon) control(command string) string {
	d.tb.Helper()
	c, err := net.DialTimeout("tcp", d.ctl, 10*time.Second)
	if err != nil {
		d.tb.Fatalf("dial the control port: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		d.tb.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		d.tb.Fatalf("control %q: %v", command, err)
	}
	return string(b)
}

// upgrade asks the daemon to upgrade to bin; it returns the daemon's
// error, or "" if the connection closed without one (it executed bin).
func (d *daemon) upgrade(bin string, env ...string) string {
	d.tb.Helper()
	reply := d.control(strings.Join(append([]string{"upgrade", bin}, env...), " "))
	return strings.TrimSpace(strings.TrimPrefix(reply, "ERR "))
}

func (d *daemon) sessions() []reconnectingpty.SessionInfo {
	d.tb.Helper()
	var out []reconnectingpty.SessionInfo
	if err := json.Unmarshal([]byte(d.control("sessions")), &out); err != nil {
		d.tb.Fatalf("sessions: %v", err)
	}
	return out
}

// pids maps each session to its process.
func (d *daemon) pids() map[uuid.UUID]int {
	m := map[uuid.UUID]int{}
	for _, s := range d.sessions() {
		m[s.ID] = s.PID
	}
	return m
}

// closes returns the daemon's "reconnecting pty closed" lines in [from, to)
// with the given reason.
func (d *daemon) closes(from, to int, reason reconnectingpty.DisconnectReason) []map[string]any {
	var out []map[string]any
	for _, l := range d.logLines(from, to) {
		var e struct {
			Msg    string         `json:"msg"`
			Fields map[string]any `json:"fields"`
		}
		if json.Unmarshal([]byte(l), &e) != nil || e.Msg != "reconnecting pty closed" {
			continue
		}
		if e.Fields["disconnect_reason"] == string(reason) {
			out = append(out, e.Fields)
		}
	}
	return out
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	<-d.logEnd
	// The daemon runs under the race detector when the tests do: what it
	// finds, in either image, fails the test.
	if log := d.log(); strings.Contains(log, "WARNING: DATA RACE") || strings.Contains(log, "panic:") {
		d.tb.Errorf("the daemon reported:\n%s", log)
	}
}

// streamClient is a resuming Go client and everything it has read.
type streamClient struct {
	tb     testing.TB
	c      *client.Client
	mu     sync.Mutex
	out    []byte
	resets int
	eof    chan struct{}
	err    error
}

func dialStream(tb testing.TB, addr string, init reconnectingpty.Init) *streamClient {
	tb.Helper()
	sc := &streamClient{tb: tb, eof: make(chan struct{})}
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	c, err := client.Dial(context.Background(), dial, init, client.Options{
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnReset: func() {
			sc.mu.Lock()
			sc.resets++
			sc.mu.Unlock()
		},
	})
	if err != nil {
		tb.Fatalf("dial session %s: %v", init.ID, err)
	}
	sc.c = c
	go sc.read()
	tb.Cleanup(func() {
		_ = c.Close()
		<-sc.eof
	})
	return sc
}

func (sc *streamClient) read() {
	defer close(sc.eof)
	buf := make([]byte, 64<<10)
	for {
		n, err := sc.c.Read(buf)
		sc.mu.Lock()
		sc.out = append(sc.out, buf[:n]...)
		if err != nil {
			sc.err = err
		}
		sc.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (sc *streamClient) output() []byte {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]byte(nil), sc.out...)
}

// waitFor waits until the output satisfies cond.
func (sc *streamClient) waitFor(what string, cond func([]byte) bool) {
	sc.tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond(sc.output()) {
		if time.Now().After(deadline) {
			out := sc.output()
			sc.tb.Fatalf("no %s in 60s; output ends %q", what, out[max(0, len(out)-300):])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitQuiet waits until no output has come for quiet.
func (sc *streamClient) waitQuiet(quiet time.Duration) {
	n := -1
	for {
		l := len(sc.output())
		if l == n {
			return
		}
		n = l
		time.Sleep(quiet)
	}
}

// waitEOF waits until the session ended and the client read it all.
func (sc *streamClient) waitEOF() {
	sc.tb.Helper()
	select {
	case <-sc.eof:
	case <-time.After(120 * time.Second):
		out := sc.output()
		sc.tb.Fatalf("no end of session in 120s; %d bytes, ending %q", len(out), out[max(0, len(out)-200):])
	}
}

// processAlive reports whether pid is a live process (not a zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(s[i+1:], " Z")
}
