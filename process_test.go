package reconnectingpty

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/sys/unix"
)

// osThreads is the number of OS threads of this process.
func osThreads(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// TestIdleSessionsHoldNoThread pins that waiting for a session's process
// to exit parks no OS thread: Go aborts at 10,000 threads, which would cap
// the number of sessions.
func TestIdleSessionsHoldNoThread(t *testing.T) {
	ts := newTestServer(t, BackendBuffered, Config{})
	before := osThreads(t)
	const n = 64
	clients := make([]*testClient, n)
	for i := range clients {
		clients[i] = ts.connect(Init{ID: uuid.New(), Command: "echo idle-" + strconv.Itoa(i) + "; exec sleep 1000"})
	}
	for i, c := range clients {
		c.expect("idle-" + strconv.Itoa(i))
	}
	// Let every wait settle into whatever it blocks in.
	time.Sleep(200 * time.Millisecond)
	if grown := osThreads(t) - before; grown >= n/4 {
		t.Fatalf("%d idle sessions added %d OS threads", n, grown)
	}
}

// TestChildGetsNoStrayDescriptor pins that a session's process does not
// inherit a descriptor the server process was started with (one without
// close-on-exec), and that the server leaves that descriptor as it was.
func TestChildGetsNoStrayDescriptor(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	stray := p[1]
	ts := newTestServer(t, BackendBuffered, Config{})
	probe := "test -e /proc/$$/fd/" + strconv.Itoa(stray) + " && echo stray-present || echo stray-absent"
	c := ts.connect(Init{ID: uuid.New(), Command: probe})
	out := c.expectEOF()
	if !strings.Contains(out, "stray-absent") {
		t.Fatalf("session saw the server's stray descriptor %d: %q", stray, out)
	}
	flags, err := unix.FcntlInt(uintptr(stray), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC != 0 {
		t.Fatal("the server left its stray descriptor close-on-exec")
	}
	// What exec.Cmd guarantees, for comparison: the same probe run by a
	// plain exec sees it.
	plain, err := exec.Command("/bin/sh", "-c", probe).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plain), "stray-present") {
		t.Fatalf("the probe is broken: a plain exec does not see the stray descriptor either: %q", plain)
	}
}

// TestShutdownScansProcOnceNotPerSession pins that closing many sessions
// at once shares passes over /proc instead of making one per session and
// signal, which made shutdown quadratic in the number of sessions.
func TestShutdownScansProcOnceNotPerSession(t *testing.T) {
	ts := newTestServer(t, BackendBuffered, Config{})
	const n = 40
	clients := make([]*testClient, n)
	for i := range clients {
		clients[i] = ts.connect(Init{ID: uuid.New(), Command: "echo up-" + strconv.Itoa(i) + "; exec sleep 1000"})
	}
	for i, c := range clients {
		c.expect("up-" + strconv.Itoa(i))
	}
	_ = ts.srv.Close()
	for _, c := range clients {
		c.expectEOF()
	}
	ts.srv.procs.mu.Lock()
	passes := ts.srv.procs.passes
	ts.srv.procs.mu.Unlock()
	// Each session asks for a pass twice (a hangup, then the final kill).
	if passes > n/2 {
		t.Fatalf("closing %d sessions made %d passes over /proc", n, passes)
	}
}

// helperServerEnv makes the test binary a bare server process (see
// TestHelperServerProcess) that a test can SIGKILL.
const helperServerEnv = "RPTY_TEST_HELPER_SERVER"

// TestHelperServerProcess is not a test: run with helperServerEnv set, it
// serves on a loopback port, prints the address and waits to be killed.
func TestHelperServerProcess(t *testing.T) {
	marker := os.Getenv(helperServerEnv)
	if marker == "" {
		t.Skip("helper process for TestSessionsDieWithAKilledServer")
	}
	srv, err := NewServer(Config{Commander: markedCommander{marker: marker}, Logger: slog.Make()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString(ln.Addr().String() + "\n")
	_ = srv.Serve(context.Background(), context.Background(), ln)
}

// startHelperServer runs the test binary as a server process with its
// temporary directory under tmp.
func startHelperServer(t *testing.T, marker, tmp string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperServerProcess$")
	cmd.Env = append(os.Environ(), helperServerEnv+"="+marker, "TMPDIR="+tmp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper server: %v", err)
	}
	return cmd, strings.TrimSpace(addr)
}

// dialSession starts a session on addr and waits for want in its output.
func dialSession(t *testing.T, addr string, init Init, want string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteInit(c, init); err != nil {
		t.Fatal(err)
	}
	tc := newTestClient(t, c)
	tc.expect(want)
	return c
}

// TestSessionsDieWithAKilledServer pins that a server killed with SIGKILL
// takes every process of its sessions along, screen's daemon, wrapper and
// program included, and that the next server removes the screen directory
// the dead one left behind.
func TestSessionsDieWithAKilledServer(t *testing.T) {
	if _, ok := lookScreen("screen"); !ok {
		t.Skip("screen is not installed")
	}
	tmp, err := os.MkdirTemp("", "rk")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	marker := randomMarker()
	srv, addr := startHelperServer(t, marker, tmp)
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = srv.Process.Signal(syscall.SIGKILL)
			_ = srv.Wait()
		})
	}
	defer kill()

	dialSession(t, addr, Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: string(BackendBuffered),
		Command: "echo buffered-up; sleep 1001 & sleep 1002"}, "buffered-up")
	dialSession(t, addr, Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: string(BackendScreen),
		Command: "echo screen-up; sleep 1003"}, "screen-up")
	if pids := markedProcesses(marker); len(pids) < 5 {
		t.Fatalf("want the sessions' processes running, found %v", pids)
	}
	stale, _ := filepath.Glob(filepath.Join(tmp, "rpty-screen-*"))
	if len(stale) != 1 {
		t.Fatalf("want one screen directory, found %v", stale)
	}

	kill()
	deadline := time.Now().Add(shortWait)
	for pids := markedProcesses(marker); len(pids) > 0; pids = markedProcesses(marker) {
		if time.Now().After(deadline) {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes outlived their killed server: %v", pids)
		}
		time.Sleep(50 * time.Millisecond)
	}

	srv2, addr2 := startHelperServer(t, marker, tmp)
	defer func() {
		_ = srv2.Process.Signal(syscall.SIGKILL)
		_ = srv2.Wait()
	}()
	dialSession(t, addr2, Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: string(BackendScreen),
		Command: "echo restarted; sleep 1004"}, "restarted")
	if _, err := os.Stat(stale[0]); !os.IsNotExist(err) {
		t.Fatalf("the dead server's screen directory %s is still there (%v)", stale[0], err)
	}
}
