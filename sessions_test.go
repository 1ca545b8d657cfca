package reconnectingpty

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/xerrors"
)

// connectWith is connect for a connection served with options.
func (ts *testServer) connectWith(init Init, opts ConnOptions) *testClient {
	ts.t.Helper()
	client, server := net.Pipe()
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		_ = ts.srv.ServeConnWith(context.Background(), server, opts)
	}()
	if init.Height == 0 {
		init.Height, init.Width = 24, 80
	}
	if init.BackendType == "" {
		init.BackendType = string(ts.backend)
	}
	if err := WriteInit(client, init); err != nil {
		ts.t.Fatal(err)
	}
	return newTestClient(ts.t, client)
}

// session finds one session in the snapshot.
func (ts *testServer) session(id uuid.UUID) (SessionInfo, bool) {
	for _, info := range ts.srv.Sessions() {
		if info.ID == id {
			return info, true
		}
	}
	return SessionInfo{}, false
}

// waitSession polls the snapshot until cond holds for the session.
func (ts *testServer) waitSession(what string, id uuid.UUID, cond func(SessionInfo, bool) bool) SessionInfo {
	ts.t.Helper()
	deadline := time.Now().Add(shortWait)
	for {
		info, ok := ts.session(id)
		if cond(info, ok) {
			return info
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("%s: not within %s; session %s listed=%v: %+v", what, shortWait, id, ok, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSessionManagement(t *testing.T) {
	t.Parallel()
	for _, backend := range backendsUnderTest(t) {
		t.Run(string(backend), func(t *testing.T) {
			t.Parallel()
			t.Run("ListShowsWhatWasStarted", func(t *testing.T) {
				t.Parallel()
				testListShowsWhatWasStarted(t, backend)
			})
			t.Run("CloseSessionAttributesEveryConnection", func(t *testing.T) {
				t.Parallel()
				testCloseSessionAttributesEveryConnection(t, backend)
			})
		})
	}
}

func testListShowsWhatWasStarted(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	if got := ts.srv.Sessions(); len(got) != 0 {
		t.Fatalf("a new server lists %d sessions: %+v", len(got), got)
	}
	before := time.Now()
	idA, idB := uuid.New(), uuid.New()
	a1 := ts.connect(Init{ID: idA, Command: testShell, Height: 30, Width: 100})
	a1.typeLine(`echo pid-""$$-end`)
	shellPID := a1.expectPID()
	a2 := ts.connect(Init{ID: idA, Height: 30, Width: 100})
	a2.expect("pid-" + "")
	viewer := ts.connectWith(Init{ID: idA, Height: 50, Width: 200}, ConnOptions{ReadOnly: true})
	viewer.expect("pid-")
	b := ts.connect(Init{ID: idB, Command: "sleep 600"})

	info := ts.waitSession("three connections on A", idA, func(info SessionInfo, ok bool) bool {
		return ok && info.Connections == 3
	})
	if info.ReadOnly != 1 {
		t.Errorf("A has %d read-only connections, want 1", info.ReadOnly)
	}
	if info.Backend != backend || info.Command != testShell {
		t.Errorf("A is %s running %q, want %s running %q", info.Backend, info.Command, backend, testShell)
	}
	if info.Height != 30 || info.Width != 100 {
		t.Errorf("A's size is %dx%d, want 30x100: a viewer's size never counts", info.Height, info.Width)
	}
	if info.Started.Before(before.Add(-time.Second)) || info.Started.After(time.Now()) {
		t.Errorf("A started at %s, the test began at %s", info.Started, before)
	}
	if info.LastInput.Before(info.Started) || info.LastOutput.Before(info.Started) {
		t.Errorf("A's last input %s and output %s: want both after its start %s", info.LastInput, info.LastOutput, info.Started)
	}
	switch backend {
	case BackendBuffered:
		if info.PID != shellPID {
			t.Errorf("A's PID is %d, the shell says %d", info.PID, shellPID)
		}
	case BackendScreen:
		// The daemon, which leads the session the shell runs in.
		if info.PID <= 0 || syscall.Kill(info.PID, 0) != nil {
			t.Errorf("A's PID %d is no live process", info.PID)
		}
	}

	// Input moves the last input time; output the last output time.
	time.Sleep(20 * time.Millisecond)
	a2.typeLine(`echo later-""input`)
	a1.expect("later-input")
	later := ts.waitSession("input and output recorded", idA, func(got SessionInfo, ok bool) bool {
		return ok && got.LastInput.After(info.LastInput) && got.LastOutput.After(info.LastOutput)
	})
	if later.Started != info.Started {
		t.Errorf("start time moved from %s to %s", info.Started, later.Started)
	}

	infoB := ts.waitSession("B listed", idB, func(info SessionInfo, ok bool) bool { return ok && info.Connections == 1 })
	if infoB.Command != "sleep 600" || infoB.ReadOnly != 0 || !infoB.LastInput.IsZero() {
		t.Errorf("B is listed as %+v", infoB)
	}
	all := ts.srv.Sessions()
	if len(all) != 2 || all[0].ID != idA || all[1].ID != idB {
		t.Errorf("Sessions() = %+v, want A then B, oldest first", all)
	}
	if got := testutil.ToFloat64(ts.srv.metrics.sessions.WithLabelValues(string(backend))); got != 2 {
		t.Errorf("sessions{backend=%q} = %v, want 2", backend, got)
	}

	// Connections leaving are counted out; the viewer was the read-only one.
	viewer.close()
	a2.close()
	info = ts.waitSession("one connection left on A", idA, func(info SessionInfo, ok bool) bool {
		return ok && info.Connections == 1
	})
	if info.ReadOnly != 0 {
		t.Errorf("after the viewer left, A has %d read-only connections", info.ReadOnly)
	}
	b.close()
	ts.waitSession("B detached", idB, func(info SessionInfo, ok bool) bool { return ok && info.Connections == 0 })
	a1.typeLine("exit")
	a1.expectEOF()
	ts.waitSession("A gone after its shell exited", idA, func(_ SessionInfo, ok bool) bool { return !ok })
}

func testCloseSessionAttributesEveryConnection(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	id, other := uuid.New(), uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	a.typeLine(`echo pid-""$$-end`)
	pid := a.expectPID()
	b := ts.connect(Init{ID: id})
	b.expect("pid-")
	viewer := ts.connectWith(Init{ID: id}, ConnOptions{ReadOnly: true})
	viewer.expect("pid-")
	bystander := ts.connect(Init{ID: other, Command: testShell})
	bystander.typeLine(`echo still-""here`)
	bystander.expect("still-here")
	ts.waitSession("three attached", id, func(info SessionInfo, ok bool) bool { return ok && info.Connections == 3 })

	err := ts.srv.CloseSession(context.Background(), uuid.New())
	if !xerrors.Is(err, ErrSessionNotFound) {
		t.Fatalf("CloseSession of an unknown ID = %v, want ErrSessionNotFound", err)
	}

	// Output written just before the close still reaches every connection.
	a.typeLine(`echo last-""words`)
	for _, c := range []*testClient{a, b, viewer} {
		c.expect("last-words")
	}
	ctx, cancel := context.WithTimeout(context.Background(), shortWait)
	defer cancel()
	if err := ts.srv.CloseSession(ctx, id); err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	// The ID is free the moment CloseSession returns.
	if _, ok := ts.session(id); ok {
		t.Fatal("the closed session is still listed")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		// Killed, but perhaps not reaped by init yet: wait briefly.
		deadline := time.Now().Add(shortWait)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("the shell %d outlived CloseSession", pid)
		}
	}
	for _, c := range []*testClient{a, b, viewer} {
		c.expectEOF()
	}
	closes := closesWithReason(ts.waitForCloses(3), DisconnectSessionClosed)
	if len(closes) != 3 {
		t.Fatalf("%d closes attributed to %s, want 3: %v", len(closes), DisconnectSessionClosed, ts.logs.closes())
	}
	for _, c := range closes {
		requireClose(t, c, DisconnectSessionClosed)
		if fmt.Sprint(c["exit_code"]) != "0" {
			t.Errorf("exit_code = %v, want 0 for an expected close", c["exit_code"])
		}
	}
	reports := ts.reports.snapshot()
	if n := len(slices.DeleteFunc(reports, func(r string) bool { return r != "0 session_closed" })); n != 3 {
		t.Errorf("the report hook saw %d session_closed closes, want 3: %v", n, ts.reports.snapshot())
	}
	if err := ts.srv.CloseSession(ctx, id); !xerrors.Is(err, ErrSessionNotFound) {
		t.Errorf("closing it again = %v, want ErrSessionNotFound", err)
	}

	// The other session is untouched, and the freed ID starts a new shell.
	bystander.typeLine(`echo still-""alive`)
	bystander.expect("still-alive")
	again := ts.connect(Init{ID: id, Command: testShell})
	again.typeLine(`echo pid-""$$-end`)
	if got := again.expectPID(); got == pid {
		t.Errorf("the freed ID reattached to the closed shell %d", pid)
	}
	if strings.Contains(again.output(), "last-words") {
		t.Error("the new session replayed the closed one's output")
	}
}

// TestKeepForever runs two servers side by side: one with a short timeout,
// one keeping sessions forever. Once the first's session has timed out,
// well past its timeout, the second's is still there and reattachable.
func TestKeepForever(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	short := newTestServer(t, BackendBuffered, Config{Timeout: timeout})
	forever := newTestServer(t, BackendBuffered, Config{Timeout: -1})

	id := uuid.New()
	var pid int
	for _, ts := range []*testServer{short, forever} {
		c := ts.connect(Init{ID: id, Command: testShell})
		c.typeLine(`echo pid-""$$-end`)
		got := c.expectPID()
		if ts == forever {
			pid = got
		}
		c.close()
	}
	left := time.Now()
	short.waitSession("the short timeout", id, func(_ SessionInfo, ok bool) bool { return !ok })
	requireClose(t, short.waitForCloses(1)[0], DisconnectGraceful)

	// Ten timeouts after both were left, the kept session is still there.
	time.Sleep(time.Until(left.Add(10 * timeout)))
	info, ok := forever.session(id)
	if !ok || info.Connections != 0 {
		t.Fatalf("the kept session: listed=%v %+v", ok, info)
	}
	c := forever.connect(Init{ID: id})
	c.typeLine(`echo pid-""$$-end`)
	// The replay holds the first pid; the new echo prints it again.
	c.waitFor("the same shell", shortWait, func(out string, _ bool) bool {
		return strings.Count(out, "pid-"+strconv.Itoa(pid)+"-end") >= 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), shortWait)
	defer cancel()
	if err := forever.srv.CloseSession(ctx, id); err != nil {
		t.Fatal(err)
	}
	c.expectEOF()
}

// BenchmarkOutputClock measures the last-output hook against the copy of
// one full PTY read into the replay ring that it accompanies (the
// baseline): the hook is one clock read and one atomic store per read.
func BenchmarkOutputClock(b *testing.B) {
	b.Run("baseline-ring-write-32KiB", func(b *testing.B) {
		r := newReplayRing(64 << 10)
		p := make([]byte, readSize)
		for b.Loop() {
			r.write(p)
		}
	})
	b.Run("tick", func(b *testing.B) {
		var o outputClock
		for b.Loop() {
			o.tick()
		}
	})
}

// TestSessionsAndCloseRaceEverything lists and closes sessions while
// connections (writable and read-only) attach, type, resize and leave, for
// the race detector; at the end every session is closed and the books
// balance: nothing listed, the gauges at zero.
func TestSessionsAndCloseRaceEverything(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{SizePolicy: SizeSmallest})
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[(i+n)%len(ids)]
				init := Init{ID: id, Command: testShell, Height: uint16(20 + i), Width: uint16(70 + n%10)}
				var c *testClient
				if i%3 == 2 {
					c = ts.connectWith(init, ConnOptions{ReadOnly: true})
				} else {
					c = ts.connect(init)
				}
				_ = WriteRequest(c.conn, Request{Data: "echo x\r"})
				_ = WriteRequest(c.conn, Request{Height: uint16(30 + n%5), Width: 90})
				time.Sleep(time.Duration(5+n%20) * time.Millisecond)
				c.close()
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, info := range ts.srv.Sessions() {
				if info.ReadOnly > info.Connections || info.Height == 0 {
					t.Errorf("inconsistent snapshot %+v", info)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			err := ts.srv.CloseSession(context.Background(), ids[n%len(ids)])
			if err != nil && !xerrors.Is(err, ErrSessionNotFound) {
				t.Errorf("CloseSession: %v", err)
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	// A handler still attaching may yet create a session: wait them out.
	deadline := time.Now().Add(shortWait)
	for ts.srv.ConnCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still served", ts.srv.ConnCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, id := range ids {
		if err := ts.srv.CloseSession(context.Background(), id); err != nil && !xerrors.Is(err, ErrSessionNotFound) {
			t.Errorf("CloseSession: %v", err)
		}
	}
	if got := ts.srv.Sessions(); len(got) != 0 {
		t.Errorf("after closing them all, listed: %+v", got)
	}
	m := ts.srv.metrics
	if a, b := testutil.ToFloat64(m.sessionsActive), testutil.ToFloat64(m.sessions.WithLabelValues(string(BackendBuffered))); a != 0 || b != 0 {
		t.Errorf("sessions_active = %v, sessions{backend=buffered} = %v; want 0", a, b)
	}
}
