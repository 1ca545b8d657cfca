package reconnectingpty

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"
)

// dialInit connects to addr over TCP and sends init; with rcvbuf > 0 the
// client's receive buffer is that small, so that the server's socket
// takes only part of a large greeting at once.
func dialInit(t *testing.T, addr string, init Init, rcvbuf int) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		if rcvbuf == 0 {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteInit(c, init); err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

// TestGreetingTheSocketCannotTakeAtOnceKeepsItsPlace pins the greeting
// written on the attaching goroutine (ptyAttachment.writeFirst): when the
// socket takes only part of it, the writer sends the rest, and output the
// program prints meanwhile comes after it. A client that does not read
// while its 6 MB replay is sent, and while the program prints, receives
// exactly what a client that read all along did.
func TestGreetingTheSocketCannotTakeAtOnceKeepsItsPlace(t *testing.T) {
	ts := newTestServer(t, BackendBuffered, Config{BufferSize: 8 << 20})
	addr, stop := serveLoopback(t, ts.srv)
	defer stop()
	init := Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: string(BackendBuffered),
		Command: "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 6000000; echo; echo READY; exec cat"}

	first := newTestClient(t, dialInit(t, addr, init, 0))
	first.expect("READY\r\n")
	first.close()

	fast := newTestClient(t, dialInit(t, addr, init, 0))
	fast.waitFor("the whole replay", longWait, func(out string, _ bool) bool { return strings.HasSuffix(out, "READY\r\n") })
	slowConn := dialInit(t, addr, init, 4096)
	// Not reading yet: the server's socket fills, and the rest of the
	// replay waits for the writer.
	time.Sleep(200 * time.Millisecond)
	for _, l := range []string{"LIVE-1", "LIVE-2", "LIVE-3"} {
		fast.typeLine(l)
	}
	slow := newTestClient(t, slowConn)
	// cat prints each line once and the terminal echoes it once.
	done := func(out string, _ bool) bool { return strings.Count(out, "LIVE-3") == 2 }
	want := fast.waitFor("the live output", longWait, done)
	got := slow.waitFor("the replay and the live output", longWait, done)
	if got != want {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("the client that did not read got %d bytes, the one that did %d; they differ from byte %d: %q, want %q",
			len(got), len(want), i, tail(got[:min(len(got), i+40)]), tail(want[:min(len(want), i+40)]))
	}
	if len(want) < 6000000 {
		t.Fatalf("the replay is %d bytes, want the 6 MB printed", len(want))
	}
}

// TestVTReattachLendsTheSnapshotsBuffer pins that a reattach draws its
// snapshot into a buffer the server reuses, rather than allocating one
// for every reattach (about the snapshot's length, 60 KiB here): a
// reattach's garbage is what starts a collection in a server whose
// sessions hold a large heap, and a collection during a reattach delays
// it by milliseconds.
func TestVTReattachLendsTheSnapshotsBuffer(t *testing.T) {
	ts := newTestServer(t, BackendVT, Config{})
	addr, stop := serveLoopback(t, ts.srv)
	defer stop()
	init := Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: string(BackendVT), Command: vtBenchOutput}
	buf := make([]byte, 256<<10)
	reattach := func() int {
		c := dialInit(t, addr, init, 0)
		defer closeAndDrain(c)
		_ = c.SetReadDeadline(time.Now().Add(longWait))
		got := 0
		for {
			n, err := c.Read(buf[got:])
			got += n
			if bytes.Contains(buf[:got], []byte("vt-bench-ready")) && got > 50<<10 {
				return got
			}
			if err != nil {
				t.Fatalf("read the snapshot: %v after %d bytes", err, got)
			}
		}
	}
	// The first attach starts the session; once it has printed, the
	// second draws the first full snapshot and lends its buffer back.
	c := dialInit(t, addr, init, 0)
	newTestClient(t, c).expect("vt-bench-ready")
	_ = c.Close()
	snapshot := reattach()
	waitNoConns(ts.srv)

	const n = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		reattach()
		waitNoConns(ts.srv)
	}
	runtime.ReadMemStats(&after)
	perReattach := int(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("snapshot %d bytes; %d bytes allocated per reattach (server and test client)", snapshot, perReattach)
	if perReattach > snapshot/2 {
		t.Errorf("%d bytes allocated per reattach with a snapshot of %d bytes: the snapshot's buffer is not reused", perReattach, snapshot)
	}
}
