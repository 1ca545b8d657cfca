package reconnectingpty

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty/internal/link"
)

const testLinkID = "test-link-0123456789"

// readLines answers every input line with "got:<line>", without echo, so
// that each line the program takes shows exactly once.
const readLines = `stty -echo; echo READY; while read l; do echo "got:$l"; done`

// linkView splits what a link client received into the output and the
// frames.
func linkView(t *testing.T, raw string) (string, []link.Frame) {
	t.Helper()
	out, frames, err := link.NewStripper(testLinkID).Strip([]byte(raw), true)
	if err != nil {
		t.Fatalf("frames in %q: %v", raw, err)
	}
	return string(out), frames
}

// waitFrame waits for a frame that cond accepts.
func waitFrame(t *testing.T, tc *testClient, what string, cond func(link.Frame) bool) {
	t.Helper()
	tc.waitFor(what, shortWait, func(out string, _ bool) bool {
		_, frames := linkView(t, out)
		for _, f := range frames {
			if cond(f) {
				return true
			}
		}
		return false
	})
}

func TestLinkAcknowledgesInputAndAnswersHeartbeats(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	tc := ts.connect(Init{ID: uuid.New(), Command: readLines, Resume: true, Link: testLinkID})
	waitFrame(t, tc, "the first frame", func(f link.Frame) bool { return f.In == 0 && !f.HasPong })
	tc.expect("READY")
	// Before the resume header: a client knows from the first byte.
	if raw := tc.output(); !strings.HasPrefix(raw, string(link.Prefix(testLinkID))+"in=0\x1b\\\x1b_rpty;v=1;mode=") {
		t.Fatalf("output starts %q, want the link frame and then the resume header", raw[:min(len(raw), 80)])
	}
	tc.send(Request{Data: "abc\r"})
	waitFrame(t, tc, "in=4", func(f link.Frame) bool { return f.In == 4 })
	tc.send(Request{Ping: 7})
	waitFrame(t, tc, "pong=7", func(f link.Frame) bool { return f.HasPong && f.Pong == 7 && f.In == 4 })
	tc.expect("got:abc")
	out, _ := linkView(t, tc.output())
	if strings.Contains(out, "\x1b_rpty;v=1;link=") {
		t.Fatalf("a frame was left in the output: %q", out)
	}
	if !strings.Contains(out, "got:abc") {
		t.Fatalf("the input did not reach the program: %q", out)
	}
}

func TestLinkResentInputReachesTheProgramOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	id := uuid.New()
	first := ts.connect(Init{ID: id, Command: readLines, Resume: true, Link: testLinkID})
	first.expect("READY")
	first.send(Request{Data: "one\r"})
	waitFrame(t, first, "in=4", func(f link.Frame) bool { return f.In == 4 })
	first.close()

	// The client did not see that ack: it resends everything from 0.
	second := ts.connect(Init{ID: id, Resume: true, Offset: 0, Link: testLinkID, InputOffset: 0})
	second.send(Request{Data: "one\rtwo\r"})
	waitFrame(t, second, "in=8", func(f link.Frame) bool { return f.In == 8 })
	second.expect("got:two")
	// A third connection resends from the middle of what was taken.
	third := ts.connect(Init{ID: id, Resume: true, Offset: 0, Link: testLinkID, InputOffset: 6})
	third.send(Request{Data: "o\rthree\r"})
	third.expect("got:three")
	out, _ := linkView(t, third.output())
	for _, line := range []string{"got:one", "got:two", "got:three"} {
		if n := strings.Count(out, line); n != 1 {
			t.Fatalf("%q reached the program %d times, want once; output %q", line, n, out)
		}
	}
}

func TestLinkSilentClientIsClosedAsAHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{HeartbeatTimeout: 300 * time.Millisecond})
	start := time.Now()
	tc := ts.connect(Init{ID: uuid.New(), Command: readLines, Link: testLinkID})
	tc.expect("READY")
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectNetworkError)
	if d, _ := closes[0]["disconnect_detail"].(string); !strings.HasPrefix(d, "heartbeat timeout") {
		t.Fatalf("detail %q, want a heartbeat timeout", d)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("closed after %s, want about the 300ms timeout", took)
	}
	if n := ts.srv.ConnCount(); n != 0 {
		t.Fatalf("%d connections still counted", n)
	}
}

func TestLinkHeartbeatsKeepAQuietClientOpen(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{HeartbeatTimeout: 300 * time.Millisecond})
	tc := ts.connect(Init{ID: uuid.New(), Command: readLines, Link: testLinkID})
	tc.expect("READY")
	for i := range 10 {
		tc.send(Request{Ping: uint64(i + 1)})
		time.Sleep(100 * time.Millisecond)
	}
	if closes := ts.logs.closes(); len(closes) != 0 {
		t.Fatalf("closed while sending heartbeats: %v", closes)
	}
}

// An old server is this server with DisableLink: it must ignore every key
// of the extension, and send no frame.
func TestLinkDisabledServerSendsNoFrames(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{DisableLink: true, HeartbeatTimeout: 100 * time.Millisecond})
	tc := ts.connect(Init{ID: uuid.New(), Command: readLines, Link: testLinkID, InputOffset: 99})
	tc.expect("READY")
	tc.send(Request{Data: "abc\r", Ping: 3})
	tc.expect("got:abc")
	time.Sleep(300 * time.Millisecond) // past the heartbeat timeout it does not apply
	tc.send(Request{Ping: 4, Data: "def\r"})
	out := tc.expect("got:def")
	if strings.Contains(out, "\x1b_") {
		t.Fatalf("an APC string in the output of a server without the extension: %q", out)
	}
}

func TestLinkIDMustBeValid(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	tc := ts.connect(Init{ID: uuid.New(), Command: readLines, Link: "short"})
	tc.expectEOF()
	closes := ts.waitForCloses(1)
	requireClose(t, closes[0], DisconnectProtocolError)
}

// A client without the extension (every deployed one) gets no frame and no
// heartbeat timeout: its stream is exactly what it was.
func TestNoLinkClientSeesNothingNew(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{HeartbeatTimeout: 100 * time.Millisecond})
	tc := ts.connect(Init{ID: uuid.New(), Command: readLines})
	tc.expect("READY")
	time.Sleep(400 * time.Millisecond) // idle well past the heartbeat timeout
	tc.send(Request{Data: "abc\r", Ping: 1})
	out := tc.expect("got:abc")
	if out != "READY\r\ngot:abc\r\n" {
		t.Fatalf("output %q, want exactly the program's", out)
	}
	if closes := ts.logs.closes(); len(closes) != 0 {
		t.Fatalf("closed: %v", closes)
	}
}
