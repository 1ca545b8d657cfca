package reconnectingpty

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestFailedUpgradeServesOnInProcess runs an upgrade whose exec fails
// (the file is no program) inside the test process, under the race
// detector and the leak check: the connection is closed as an upgrade, the
// session and its process go on, a reconnect finds them, the listener
// accepts again, and closing the server afterwards leaves nothing behind.
func TestFailedUpgradeServesOnInProcess(t *testing.T) {
	ts := newTestServer(t, BackendVT, Config{})
	addr, stop := serveLoopback(t, ts.srv)
	defer stop()
	id := uuid.New()
	dial := func() *testClient {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteInit(c, Init{ID: id, Height: 24, Width: 80, Command: "cat", BackendType: "vt"}); err != nil {
			t.Fatal(err)
		}
		return newTestClient(t, c)
	}
	first := dial()
	first.typeLine("before")
	first.expect("before\r\n")
	pid := ts.srv.Sessions()[0].PID

	bogus := filepath.Join(t.TempDir(), "not-a-program")
	if err := os.WriteFile(bogus, []byte("not a program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ln := map[string]net.Listener{}
	err := ts.srv.Upgrade(context.Background(), UpgradeOptions{Path: bogus, Listeners: ln})
	if err == nil || !strings.Contains(err.Error(), "exec format error") {
		t.Fatalf("Upgrade: %v, want exec format error", err)
	}
	first.expectEOF()
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectServerUpgrade)

	second := dial()
	second.typeLine("after")
	second.expect("after\r\n")
	if got := ts.srv.Sessions(); len(got) != 1 || got[0].PID != pid {
		t.Fatalf("sessions after the failed upgrade: %+v, want the one of process %d", got, pid)
	}
	second.close()
	// The undo restored close-on-exec on the terminal: a child started
	// now inherits nothing but its standard streams.
	probe := ts.connect(Init{ID: uuid.New(), Command: "ls /proc/self/fd | tr '\\n' ' '"})
	probe.waitFor("the probe's descriptors", 10*time.Second, func(out string, eof bool) bool { return eof })
	if got := probe.output(); !strings.Contains(got, "0 1 2 3 ") || strings.Contains(got, "0 1 2 3 4") {
		t.Fatalf("a new session's process has descriptors %q, want 0 1 2 3", got)
	}
}
