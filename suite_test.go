package reconnectingpty

import (
	"errors"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// backendsUnderTest lists the backends the behaviour suite runs against.
func backendsUnderTest(t *testing.T) []BackendType {
	t.Helper()
	backends := []BackendType{BackendVT, BackendBuffered}
	if _, ok := lookScreen("screen"); ok {
		backends = append(backends, BackendScreen)
	} else {
		t.Run(string(BackendScreen), func(t *testing.T) {
			t.Skip("screen not installed: apt-get install screen")
		})
	}
	return backends
}

// TestBackends runs the behaviour every backend owes its clients.
func TestBackends(t *testing.T) {
	t.Parallel()
	for _, backend := range backendsUnderTest(t) {
		t.Run(string(backend), func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name string
				fn   func(t *testing.T, backend BackendType)
			}{
				{"TwoClientsSeeTheSameEcho", testTwoClientsSeeTheSameEcho},
				{"ReattachShowsEarlierOutput", testReattachShowsEarlierOutput},
				{"ExitGivesEveryClientEOF", testExitGivesEveryClientEOF},
				{"OneShotCommandOutputsThenEOF", testOneShotCommandOutputsThenEOF},
				{"ExitCodeIsReported", testExitCodeIsReported},
				{"UTF8SurvivesLangC", testUTF8SurvivesLangC},
				{"TimeoutKillsTheProcess", testTimeoutKillsTheProcess},
				{"ShutdownLeavesNoProcess", testShutdownLeavesNoProcess},
				{"StalledClientDoesNotStopAnother", testStalledClientDoesNotStopAnother},
				{"ResizeReachesTheProgram", testResizeReachesTheProgram},
				{"RacingConnectionsShareOneSession", testRacingConnectionsShareOneSession},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, backend)
				})
			}
		})
	}
}

func testTwoClientsSeeTheSameEcho(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	b := ts.connect(Init{ID: id})
	a.typeLine(`echo two-""clients-$((6*7))`)
	// The quotes keep the typed line from matching: only the output does.
	a.expect("two-clients-42")
	b.expect("two-clients-42")
}

func testReattachShowsEarlierOutput(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	a.typeLine(`echo before-""detach`)
	a.expect("before-detach")
	a.close()
	ts.waitForCloses(1)

	b := ts.connect(Init{ID: id})
	b.expect("before-detach")
	// The same shell: state set before the detach is still there.
	b.typeLine(`echo still-""$((1+1))`)
	b.expect("still-2")
	requireClose(t, ts.logs.closes()[0], DisconnectGraceful)
}

func testExitGivesEveryClientEOF(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	b := ts.connect(Init{ID: id})
	a.typeLine(`echo ready-""now`)
	a.expect("ready-now")
	b.expect("ready-now")
	a.typeLine("exit")
	a.expectEOF()
	b.expectEOF()
	for _, c := range ts.waitForCloses(2) {
		requireClose(t, c, DisconnectProcessExited)
	}
	// The session is gone: the same ID starts a fresh one.
	c := ts.connect(Init{ID: id, Command: testShell})
	c.typeLine(`echo fresh-""start`)
	out := c.expect("fresh-start")
	if strings.Contains(out, "ready-now") {
		t.Fatalf("new session replayed the old one's output: %q", out)
	}
}

func testOneShotCommandOutputsThenEOF(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	a := ts.connect(Init{ID: uuid.New(), Command: "echo one-shot-output"})
	out := a.expectEOF()
	if !strings.Contains(out, "one-shot-output") {
		t.Fatalf("output %q lacks the command's output", out)
	}
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectProcessExited)
	if closes[0]["exit_code"] != 0 {
		t.Fatalf("exit_code = %v, want 0", closes[0]["exit_code"])
	}
}

func testExitCodeIsReported(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	a := ts.connect(Init{ID: uuid.New(), Command: "echo failing; exit 3"})
	a.expectEOF()
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectProcessExited)
	if closes[0]["exit_code"] != 3 {
		t.Fatalf("exit_code = %v, want 3", closes[0]["exit_code"])
	}
	if got := ts.reports.snapshot(); len(got) != 1 || got[0] != "3 process_exited" {
		t.Fatalf("report hook saw %v, want [3 process_exited]", got)
	}
}

func testUTF8SurvivesLangC(t *testing.T, backend BackendType) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "LANG=C"}
	ts := newTestServer(t, backend, Config{Commander: markedCommander{marker: randomMarker(), env: env}})
	ts.marker = ts.srv.cfg.Commander.(markedCommander).marker
	a := ts.connect(Init{ID: uuid.New(), Command: testShell})
	// Typed through readline, echoed by it and printed by the shell: each
	// step mangles multibyte input in a non-UTF-8 locale.
	a.typeLine(`echo "glyph:❯é日"`)
	a.waitFor("the glyphs twice", shortWait, func(out string, _ bool) bool {
		return strings.Count(out, "❯é日") >= 2 && strings.Contains(out, "glyph:❯é日")
	})
}

func testTimeoutKillsTheProcess(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{Timeout: 300 * time.Millisecond})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	a.typeLine(`echo pid-""$$-end`)
	pid := a.expectPID()
	a.close()

	deadline := time.Now().Add(shortWait)
	for {
		_, registered := ts.srv.sessions.Load(id)
		if syscall.Kill(pid, 0) != nil && !registered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shell %d alive (or session registered: %v) long after the timeout", pid, registered)
		}
		time.Sleep(20 * time.Millisecond)
	}
	requireClose(t, ts.waitForCloses(1)[0], DisconnectGraceful)
	// The next connection with the ID gets a new shell.
	b := ts.connect(Init{ID: id, Command: testShell})
	b.typeLine(`echo pid-""$$-end`)
	if got := b.expectPID(); got == pid {
		t.Fatalf("reattached to the timed-out shell %d", pid)
	}
}

var pidPattern = regexp.MustCompile(`pid-(\d+)-end`)

// expectPID waits for the output of echo pid-""$$-end and parses it.
func (tc *testClient) expectPID() int {
	tc.t.Helper()
	out := tc.waitFor("a pid", shortWait, func(out string, _ bool) bool {
		return pidPattern.MatchString(out)
	})
	pid, _ := strconv.Atoi(pidPattern.FindStringSubmatch(out)[1])
	return pid
}

func testShutdownLeavesNoProcess(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	a := ts.connect(Init{ID: uuid.New(), Command: testShell})
	// A background job in its own process group and a subshell's child:
	// both must go with the session.
	a.typeLine(`set -m; sleep 1000 & (sleep 1001 &); echo started-""jobs`)
	a.expect("started-jobs")
	// A process being exec'd shows no environment for a moment: poll.
	deadline := time.Now().Add(shortWait)
	for n := len(markedProcesses(ts.marker)); n < 3; n = len(markedProcesses(ts.marker)) {
		if time.Now().After(deadline) {
			t.Fatalf("want the shell and two sleeps running, found %d processes", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ts.srv.Close(); err != nil {
		t.Fatal(err)
	}
	a.expectEOF()
	ts.requireNoProcesses()
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectServerShutdown)

	// A closed server refuses new connections, attributed.
	client, server := net.Pipe()
	defer client.Close()
	if err := ts.srv.ServeConn(t.Context(), server); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeConn after Close = %v, want ErrServerClosed", err)
	}
	requireClose(t, ts.waitForCloses(2)[1], DisconnectServerShutdown)
}

func testStalledClientDoesNotStopAnother(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{ConnQueueSize: 256 << 10})
	id := uuid.New()
	reader := ts.connect(Init{ID: id, Command: testShell})
	reader.typeLine(`echo ready-""now`)
	reader.expect("ready-now")

	// A connection that sends its init and then never reads.
	stalled, server := net.Pipe()
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		_ = ts.srv.ServeConn(t.Context(), server)
	}()
	if err := WriteInit(stalled, Init{ID: id, Height: 24, Width: 80, BackendType: string(backend)}); err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()

	reader.typeLine(`seq 1 200000; echo "stall-""done"`)
	reader.waitFor("all output", longWait, func(out string, _ bool) bool {
		return strings.Contains(out, "200000") && strings.Contains(out, "stall-done")
	})
	if backend != BackendScreen { // screen skips a stalled client instead
		closes := ts.waitForCloses(1)
		requireClose(t, closes[0], DisconnectSlowConsumer)
	}
}

func testResizeReachesTheProgram(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell, Height: 30, Width: 100})
	a.typeLine(`stty size`)
	a.expect("30 100")
	a.send(Request{Height: 50, Width: 132})
	// A backend may apply the resize asynchronously (screen relays it from
	// the client to its daemon): ask until the program sees it.
	a.waitUntil("the new size", shortWait, func() { a.typeLine(`stty size`) }, func(out string) bool {
		return strings.Contains(out, "50 132")
	})
}

func testRacingConnectionsShareOneSession(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	id := uuid.New()
	clients := make([]*testClient, 5)
	for i := range clients {
		clients[i] = ts.connect(Init{ID: id, Command: testShell})
	}
	clients[0].typeLine(`echo pid-""$$-end`)
	pid := clients[0].expectPID()
	for _, c := range clients[1:] {
		if got := c.expectPID(); got != pid {
			t.Fatalf("client saw shell %d, want %d", got, pid)
		}
	}
}
