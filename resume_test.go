package reconnectingpty

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty/internal/resume"
)

// steadyOutput prints numbered lines at a steady pace, then a marker, then
// waits for a line of input so that the session outlives the test's
// reconnects.
func steadyOutput(lines int) string {
	return `for i in $(seq 1 ` + strconv.Itoa(lines) + `); do echo "steady output line $i"; ` +
		`[ $((i % 500)) = 0 ] && sleep 0.05; done; echo END""-OF-OUTPUT; read x`
}

const endOfOutput = "END-OF-OUTPUT\r\n"

// resumeConn is a raw connection that asked to resume.
type resumeConn struct {
	t    *testing.T
	conn net.Conn
	hdr  resume.Header
	rest []byte // read past the header, not yet taken
}

// dialResume connects to the session with Resume and offset and reads the
// header, which must come first.
func (ts *testServer) dialResume(init Init, offset uint64) *resumeConn {
	ts.t.Helper()
	client, server := net.Pipe()
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		_ = ts.srv.ServeConn(context.Background(), server)
	}()
	init.Resume, init.Offset = true, offset
	if init.Height == 0 {
		init.Height, init.Width = 24, 80
	}
	if init.BackendType == "" {
		init.BackendType = string(ts.backend)
	}
	if err := WriteInit(client, init); err != nil {
		ts.t.Fatal(err)
	}
	rc := &resumeConn{t: ts.t, conn: client}
	ts.t.Cleanup(func() { _ = client.Close() })
	_ = client.SetReadDeadline(time.Now().Add(longWait))
	var held []byte
	buf := make([]byte, 64)
	for {
		n, err := client.Read(buf)
		held = append(held, buf[:n]...)
		h, hn, status, perr := resume.Parse(held)
		switch {
		case perr != nil:
			ts.t.Fatalf("bad resume header %q: %v", held, perr)
		case status == resume.Found:
			rc.hdr, rc.rest = h, held[hn:]
			return rc
		case status == resume.Absent:
			ts.t.Fatalf("no resume header: output starts %q", held)
		}
		if err != nil {
			ts.t.Fatalf("reading the resume header: %v after %q", err, held)
		}
	}
}

// readN reads exactly n more bytes of output.
func (rc *resumeConn) readN(n int) []byte {
	rc.t.Helper()
	out := make([]byte, 0, n)
	take := min(n, len(rc.rest))
	out = append(out, rc.rest[:take]...)
	rc.rest = rc.rest[take:]
	if len(out) < n {
		rest := make([]byte, n-len(out))
		if _, err := io.ReadFull(rc.conn, rest); err != nil {
			rc.t.Fatalf("reading %d bytes: %v", n, err)
		}
		out = append(out, rest...)
	}
	return out
}

// readUntil reads output until it holds s, and returns it up to the end
// of s; what was read past s is kept for later.
func (rc *resumeConn) readUntil(s string) []byte {
	rc.t.Helper()
	out := append([]byte(nil), rc.rest...)
	rc.rest = nil
	buf := make([]byte, 32<<10)
	for {
		if i := bytes.Index(out, []byte(s)); i >= 0 {
			end := i + len(s)
			rc.rest = append(rc.rest, out[end:]...)
			return out[:end]
		}
		n, err := rc.conn.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			rc.t.Fatalf("waiting for %q: %v; output ends %q", s, err, tail(string(out)))
		}
	}
}

// expectPromptAfter waits for s and then the shell's prompt, after which
// an idle shell writes nothing.
func (tc *testClient) expectPromptAfter(s string) string {
	tc.t.Helper()
	return tc.waitFor(strconv.Quote(s)+" and a prompt", shortWait, func(out string, _ bool) bool {
		i := strings.LastIndex(out, s)
		return i >= 0 && (strings.HasSuffix(out[i:], "# ") || strings.HasSuffix(out[i:], "$ "))
	})
}

// TestResumeIsByteExactAcrossCuts cuts a resuming connection at random
// points while the program writes steadily; each reconnect names the
// bytes it has, and the output it gets, headers aside, is the reference
// connection's byte for byte.
func TestResumeIsByteExactAcrossCuts(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const lines = 20000
	total := len(endOfOutput)
	for i := 1; i <= lines; i++ {
		total += len("steady output line \r\n") + len(strconv.Itoa(i))
	}
	// Cut points, in order, within the output.
	cuts := make([]int, 5)
	for i := range cuts {
		cuts[i] = rng.IntN(total)
	}
	slices.Sort(cuts)

	ts := newTestServer(t, BackendBuffered, Config{})
	id := uuid.New()
	// Every connection sends the same init, as a real client does: the
	// session is created by whichever reaches the server first.
	init := Init{ID: id, Command: steadyOutput(lines)}
	ref := ts.connect(init)
	var got []byte
	var offset uint64
	for i, cut := range cuts {
		rc := ts.dialResume(init, offset)
		if rc.hdr != (resume.Header{Mode: resume.Delta, Offset: offset}) {
			t.Fatalf("reconnect %d at offset %d: header %+v, want a delta", i, offset, rc.hdr)
		}
		got = append(got, rc.readN(cut-int(offset))...)
		offset = uint64(cut)
		_ = rc.conn.Close()
	}
	rc := ts.dialResume(init, offset)
	if rc.hdr != (resume.Header{Mode: resume.Delta, Offset: offset}) {
		t.Fatalf("last reconnect at offset %d: header %+v, want a delta", offset, rc.hdr)
	}
	got = append(got, rc.readUntil(endOfOutput)...)
	// The reference got the session's output from its first byte.
	whole := []byte(ref.waitFor("the whole output", longWait, func(out string, _ bool) bool {
		return strings.HasSuffix(out, endOfOutput)
	}))
	if len(whole) != total {
		t.Fatalf("the reference got %d bytes, want %d", len(whole), total)
	}
	if !bytes.Equal(got, whole) {
		i := 0
		for i < len(got) && i < len(whole) && got[i] == whole[i] {
			i++
		}
		t.Fatalf("resumed output (%d bytes) differs from the reference (%d bytes) at byte %d: %q vs %q",
			len(got), len(whole), i, got[i:min(len(got), i+40)], whole[i:min(len(whole), i+40)])
	}
}

// TestStaleOffsetGetsAReset reconnects with an offset the ring no longer
// holds: the server answers reset at the current end of the output, the
// redraw is the replay a fresh attach gets (the reference's output cut at a
// safe start), and the live output after it continues the reference
// exactly.
func TestStaleOffsetGetsAReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		ringSize int // 0: the default, 1 MiB
		lines    int // seq 1 lines: well past the ring
	}{
		{"SmallRing", 64 << 10, 40000},
		{"DefaultRing", 0, 250000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testStaleOffsetGetsAReset(t, tc.ringSize, tc.lines)
		})
	}
}

func testStaleOffsetGetsAReset(t *testing.T, ringSize, lines int) {
	ts := newTestServer(t, BackendBuffered, Config{BufferSize: 4 << 10, ResumeBufferSize: ringSize})
	id := uuid.New()
	ref := ts.connect(Init{ID: id, Command: testShell})
	ref.typeLine(`echo first-""line`)
	ref.expect("first-line\r\n")

	early := ts.dialResume(Init{ID: id}, 0)
	if early.hdr.Mode != resume.Delta {
		t.Fatalf("early reconnect: %+v, want a delta", early.hdr)
	}
	_ = early.conn.Close()

	// Far more than the ring holds goes by.
	ref.typeLine(`seq 1 ` + strconv.Itoa(lines) + `; echo more-""output`)
	ref.expect("more-output\r\n")
	late := ts.dialResume(Init{ID: id}, 5)
	if late.hdr.Mode != resume.Reset {
		t.Fatalf("stale reconnect: %+v, want a reset", late.hdr)
	}
	redraw := late.readN(int(late.hdr.Len))
	// The reference has every byte; the header's offset is where the
	// session's output stood.
	at := int(late.hdr.Offset)
	whole := ref.waitFor("the output up to the reset", shortWait, func(out string, _ bool) bool { return len(out) >= at })[:at]
	if len(redraw) == 0 || len(redraw) > 4<<10 || !strings.HasSuffix(whole, string(redraw)) {
		t.Fatalf("redraw of %d bytes is not the tail of the reference's first %d:\n%q", len(redraw), at, tail(string(redraw)))
	}
	// A plain attach now gets the same replay (more, if output followed).
	// The shell's prompt may come after the reset, moving the line where
	// the replay is cut, so the replay may start a line later and be
	// shorter than the redraw: what both must hold is the redraw's end.
	fresh := ts.connect(Init{ID: id})
	fresh.waitFor("a plain attach's replay holding the reset's redraw", shortWait, func(out string, _ bool) bool {
		return strings.HasPrefix(out, string(redraw)) || strings.Contains(out, string(redraw[len(redraw)/2:]))
	})

	ref.typeLine(`echo after-""reset`)
	live := string(late.readUntil("after-reset\r\n"))
	cont := ref.expect("after-reset\r\n")[at:]
	if !strings.HasPrefix(cont, live) {
		t.Fatalf("live output after the reset %q, the reference continued %q", live, cont)
	}
}

// TestWithoutResumeTheOutputIsUnchanged pins that a client that does not
// ask to resume gets no header: its replay and live output are exactly
// what the original protocol sends.
func TestWithoutResumeTheOutputIsUnchanged(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	id := uuid.New()
	ref := ts.connect(Init{ID: id, Command: testShell})
	ref.typeLine(`echo one-""line`)
	ref.expect("one-line\r\n")
	plain := ts.connect(Init{ID: id})
	ref.typeLine(`echo two-""line`)
	want := ref.expectPromptAfter("two-line\r\n")
	out := plain.expectPromptAfter("two-line\r\n")
	if strings.Contains(out, "\x1b_rpty") {
		t.Fatalf("header sent to a client that did not resume: %q", out)
	}
	if out != want {
		t.Fatalf("plain attach got %q, want the whole output %q", out, ref.output())
	}
}

// TestResumeOffsetsThatCannotBeServed sends offsets beyond anything
// written: each gets a reset at the real end of the output, and the
// server keeps serving.
func TestResumeOffsetsThatCannotBeServed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	id := uuid.New()
	ref := ts.connect(Init{ID: id, Command: testShell})
	ref.typeLine(`echo ready-""now`)
	ref.expectPromptAfter("ready-now\r\n")
	// The largest offset there is tells where the output stands.
	probe := ts.dialResume(Init{ID: id}, 1<<64-1)
	end := probe.hdr.Offset
	if probe.hdr.Mode != resume.Reset || end < uint64(len("ready-now\r\n")) {
		t.Fatalf("offset 2^64-1: header %+v, want a reset at the end of the output", probe.hdr)
	}
	_ = probe.conn.Close()
	for _, offset := range []uint64{end + 1, 1 << 40} {
		rc := ts.dialResume(Init{ID: id}, offset)
		if rc.hdr.Mode != resume.Reset || rc.hdr.Offset != end {
			t.Fatalf("offset %d: header %+v, want a reset at %d", offset, rc.hdr, end)
		}
		_ = rc.conn.Close()
	}
	if rc := ts.dialResume(Init{ID: id}, end); rc.hdr != (resume.Header{Mode: resume.Delta, Offset: end}) {
		t.Fatalf("offset %d, the end: header %+v, want an empty delta", end, rc.hdr)
	}
	// A new session, asked for an offset it never reached, resets to 0.
	fresh := ts.dialResume(Init{ID: uuid.New(), Command: "echo fresh; read x"}, 77)
	if fresh.hdr != (resume.Header{Mode: resume.Reset, Offset: 0, Len: 0}) {
		t.Fatalf("new session: header %+v, want a reset at 0 with nothing to redraw", fresh.hdr)
	}
	fresh.readUntil("fresh\r\n")
	ref.typeLine(`echo still-""serving`)
	ref.expect("still-serving")
}

// TestScreenResumeIsAlwaysAReset: screen hides the program's output
// stream, so a resuming connection always gets a reset, with screen's
// repaint as the first output of its own stream.
func TestScreenResumeIsAlwaysAReset(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	ts := newTestServer(t, BackendScreen, Config{})
	id := uuid.New()
	ref := ts.connect(Init{ID: id, Command: testShell})
	ref.typeLine(`echo on-""screen`)
	ref.expect("on-screen")
	for _, offset := range []uint64{0, 10} {
		rc := ts.dialResume(Init{ID: id}, offset)
		if rc.hdr != (resume.Header{Mode: resume.Reset}) {
			t.Fatalf("offset %d: header %+v, want a reset at 0 with len 0", offset, rc.hdr)
		}
		rc.readUntil("on-screen")
		_ = rc.conn.Close()
	}
}
