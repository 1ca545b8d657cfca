package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
	"github.com/reconnectingpty/reconnectingpty/internal/leakcheck"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m)
}

func dialShell(t *testing.T, dial client.DialFunc, height, width uint16, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, dial, reconnectingpty.Init{
		Height: height, Width: width, Command: shellCommand, BackendType: string(reconnectingpty.BackendBuffered),
	}, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

func write(t *testing.T, c *client.Client, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// closeClient closes c and checks that the reader stopped with ErrClosed.
func closeClient(t *testing.T, c *client.Client, out *output) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := out.wait(t); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Read after Close: got %v, want ErrClosed", err)
	}
}

// TestOutputAndInput runs a shell over net.Pipe: typed input reaches it and
// its output comes back.
func TestOutputAndInput(t *testing.T) {
	d := newPipeDialer(t)
	c := dialShell(t, d.dial, 24, 80, client.Options{})
	out := readOutput(c)
	if c.ID() == uuid.Nil {
		t.Fatal("Dial did not pick a session ID")
	}
	// The arithmetic shows the shell ran the line, not just echoed it.
	write(t, c, "echo out-$((6*7))\r")
	out.waitFor(t, "out-42")
	if got := c.State(); got != client.StateConnected {
		t.Fatalf("state %s, want connected", got)
	}
	closeClient(t, c, out)
}

// TestResize checks the initial size from the init and a later Resize,
// as the shell's terminal sees them.
func TestResize(t *testing.T) {
	s := newServer(t)
	c := dialShell(t, s.dial, 20, 70, client.Options{})
	out := readOutput(c)
	write(t, c, "stty size\r")
	out.waitFor(t, "20 70\r\n")
	if err := c.Resize(33, 101); err != nil {
		t.Fatal(err)
	}
	write(t, c, "stty size\r")
	out.waitFor(t, "33 101\r\n")
	closeClient(t, c, out)
}

// TestReconnectKeepsShell drops the connection with a reset and checks
// that the client redials into the same shell: a variable set before the
// drop is still set, and the shell's PID is the same. Resuming, the
// reconnect continues the stream exactly, with no event and nothing
// repeated; without resume, the server's replay follows OnReplay.
func TestReconnectKeepsShell(t *testing.T) {
	for _, tc := range []struct {
		name          string
		disableResume bool
		replays       int32
	}{
		{"Resume", false, 0},
		{"NoResume", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			ev := newEvents()
			var replays, resets atomic.Int32
			c := dialShell(t, s.dial, 24, 80, client.Options{
				OnState:       ev.record,
				OnReplay:      func() { replays.Add(1) },
				OnReset:       func() { resets.Add(1) },
				DisableResume: tc.disableResume,
				MinBackoff:    10 * time.Millisecond,
				MaxBackoff:    100 * time.Millisecond,
			})
			out := readOutput(c)
			ev.waitFor(t, client.StateConnected)
			write(t, c, "V=survived; echo pid-$$-$((1+1))\r")
			out.waitFor(t, "-2\r\n")
			pid := regexp.MustCompile(`pid-(\d+)-2\r\n`).FindStringSubmatch(out.String())
			if pid == nil {
				t.Fatalf("no pid in output %q", out.String())
			}

			s.ln.Drop()
			rev := ev.waitFor(t, client.StateReconnecting)
			if rev.Err == nil || errors.Is(rev.Err, io.EOF) {
				t.Fatalf("reconnecting event error %v, want the read error", rev.Err)
			}
			ev.waitFor(t, client.StateConnected)
			write(t, c, "echo got-$V-pid-$$\r")
			out.waitFor(t, "got-survived-pid-"+pid[1]+"\r\n")
			if s.ln.Accepted() < 2 {
				t.Fatalf("accepted %d connections, want a redial", s.ln.Accepted())
			}
			if n := replays.Load(); n != tc.replays {
				t.Fatalf("OnReplay called %d times, want %d", n, tc.replays)
			}
			if n := resets.Load(); n != 0 {
				t.Fatalf("OnReset called %d times, want 0", n)
			}
			if n, want := strings.Count(out.String(), "pid-"+pid[1]+"-2\r\n"), 1+int(tc.replays); n != want {
				t.Fatalf("the output before the drop is shown %d times, want %d:\n%q", n, want, out.String())
			}
			closeClient(t, c, out)
			if ev := ev.waitFor(t, client.StateClosed); !errors.Is(ev.Err, client.ErrClosed) {
				t.Fatalf("closed event error %v, want ErrClosed", ev.Err)
			}
		})
	}
}

// TestSessionEnd types exit into a real shell: Read returns io.EOF, the
// state is closed with ErrSessionEnded, and nothing is redialled.
func TestSessionEnd(t *testing.T) {
	s := newServer(t)
	ev := newEvents()
	c := dialShell(t, s.dial, 24, 80, client.Options{OnState: ev.record})
	defer c.Close()
	out := readOutput(c)
	write(t, c, "echo bye-$((2+3)); exit\r")
	if err := out.wait(t); err != io.EOF {
		t.Fatalf("Read error %v, want io.EOF", err)
	}
	if !strings.Contains(out.String(), "bye-5") {
		t.Fatalf("output before the end is missing: %q", out.String())
	}
	if got := ev.waitFor(t, client.StateClosed); !errors.Is(got.Err, client.ErrSessionEnded) {
		t.Fatalf("closed event error %v, want ErrSessionEnded", got.Err)
	}
	if got := c.State(); got != client.StateClosed {
		t.Fatalf("state %s, want closed", got)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, client.ErrSessionEnded) {
		t.Fatalf("Write after the end: %v, want ErrSessionEnded", err)
	}
	if n := s.ln.Accepted(); n != 1 {
		t.Fatalf("accepted %d connections, want 1 (no redial after the session ended)", n)
	}
}

// fakeServer accepts connections, reads their init, and runs a handler,
// for tests that need exact control of what the server does.
type fakeServer struct {
	ln    net.Listener
	inits chan reconnectingpty.Init
	wg    sync.WaitGroup
	n     atomic.Int32
}

// newFakeServer serves with handle(n, conn), n counting connections from
// 0. The handler's connection is closed when it returns.
func newFakeServer(t *testing.T, handle func(n int, conn net.Conn)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln, inits: make(chan reconnectingpty.Init, 100)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(f.n.Add(1)) - 1
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer conn.Close()
				init, err := reconnectingpty.ReadInit(conn)
				if err != nil {
					return
				}
				f.inits <- init
				handle(n, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeServer) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", f.ln.Addr().String())
}

func (f *fakeServer) nextInit(t *testing.T) reconnectingpty.Init {
	t.Helper()
	select {
	case init := <-f.inits:
		return init
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for an init")
		return reconnectingpty.Init{}
	}
}

// drain reads the request stream until the client hangs up.
func drain(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) }

var fastRetry = client.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}

// TestRedialSendsLatestSizeAndID checks the live resize request and that
// the init of a redial names the same session at the latest size.
func TestRedialSendsLatestSizeAndID(t *testing.T) {
	resized := make(chan reconnectingpty.Request, 1)
	f := newFakeServer(t, func(n int, conn net.Conn) {
		_, _ = conn.Write([]byte("hi"))
		if n > 0 {
			drain(conn)
			return
		}
		var req reconnectingpty.Request
		if err := json.NewDecoder(conn).Decode(&req); err == nil {
			resized <- req
		}
		rptytest.ResetConn(conn)
	})
	id := uuid.New()
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{ID: id, Height: 24, Width: 80}, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	if first := f.nextInit(t); first.ID != id || first.Height != 24 || first.Width != 80 {
		t.Fatalf("first init %+v", first)
	}
	out.waitFor(t, "hi")
	if err := c.Resize(40, 120); err != nil {
		t.Fatal(err)
	}
	select {
	case req := <-resized:
		if req != (reconnectingpty.Request{Height: 40, Width: 120}) {
			t.Fatalf("resize request %+v", req)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no resize request")
	}
	second := f.nextInit(t)
	if second.ID != id || second.Height != 40 || second.Width != 120 {
		t.Fatalf("redial init %+v, want ID %s at 40x120", second, id)
	}
	out.waitFor(t, "hihi")
	closeClient(t, c, out)
}

// TestEOFBeforeOutputIsRetried: a connection closed cleanly before any
// byte is a refusal, not a session end, so the client redials.
func TestEOFBeforeOutputIsRetried(t *testing.T) {
	f := newFakeServer(t, func(n int, conn net.Conn) {
		if n == 0 {
			return // clean close, no output
		}
		_, _ = conn.Write([]byte("second"))
		drain(conn)
	})
	ev := newEvents()
	opts := fastRetry
	opts.OnState = ev.record
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	if e := ev.waitFor(t, client.StateReconnecting); e.Err == nil || !strings.Contains(e.Err.Error(), "before any output") {
		t.Fatalf("reconnecting event error %v", e.Err)
	}
	out.waitFor(t, "second")
	closeClient(t, c, out)
}

// TestEOFAfterOutputEndsSession: a clean close after output is the end of
// the session, final: Read drains the output and returns io.EOF.
func TestEOFAfterOutputEndsSession(t *testing.T) {
	f := newFakeServer(t, func(n int, conn net.Conn) {
		_, _ = conn.Write([]byte("last words"))
	})
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "last words" {
		t.Fatalf("ReadAll = %q, %v; want the output and io.EOF", got, err)
	}
	if n := f.n.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	if err := c.Resize(10, 10); !errors.Is(err, client.ErrSessionEnded) {
		t.Fatalf("Resize after the end: %v", err)
	}
}

// TestReadTimeout: a connection silent for ReadTimeout is treated as
// dropped and redialled.
func TestReadTimeout(t *testing.T) {
	f := newFakeServer(t, func(n int, conn net.Conn) {
		_, _ = conn.Write([]byte{'a' + byte(n)})
		drain(conn) // then silence
	})
	opts := fastRetry
	opts.ReadTimeout = 200 * time.Millisecond
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	out.waitFor(t, "abc")
	closeClient(t, c, out)
}

// TestGiveUp: with MaxAttempts, refused redials end the client with an
// error that is not io.EOF.
func TestGiveUp(t *testing.T) {
	var f *fakeServer
	f = newFakeServer(t, func(n int, conn net.Conn) {
		_, _ = conn.Write([]byte("x"))
		_ = f.ln.Close() // every redial is refused from now on
		rptytest.ResetConn(conn)
	})
	ev := newEvents()
	opts := fastRetry
	opts.MaxAttempts = 3
	opts.OnState = ev.record
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = io.ReadAll(c)
	if err == nil || errors.Is(err, client.ErrClosed) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("Read error %v, want giving up", err)
	}
	closed := ev.waitFor(t, client.StateClosed)
	if closed.Err == nil || closed.Err.Error() != err.Error() {
		t.Fatalf("closed event error %v, want %v", closed.Err, err)
	}
}

// TestClose: Close is idempotent, ends Read, Write and Resize, and
// interrupts a backoff wait.
func TestClose(t *testing.T) {
	f := newFakeServer(t, func(n int, conn net.Conn) {
		_, _ = conn.Write([]byte("x"))
		rptytest.ResetConn(conn)
	})
	ev := newEvents()
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, client.Options{
		OnState:    ev.record,
		MinBackoff: time.Hour, // Close must not wait for it
		MaxBackoff: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	ev.waitFor(t, client.StateReconnecting)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Close()
		_ = c.Close()
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not interrupt the backoff")
	}
	if err := out.wait(t); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Read: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Write: %v", err)
	}
	if err := c.Resize(1, 1); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Resize: %v", err)
	}
	if c.State() != client.StateClosed {
		t.Fatalf("state %s", c.State())
	}
	_ = c.Close()
}

// TestWriteKeepsSplitUTF8: a character split across two Writes reaches
// the server whole; input travels in JSON strings, which would turn the
// halves into U+FFFD.
func TestWriteKeepsSplitUTF8(t *testing.T) {
	data := make(chan string, 10)
	f := newFakeServer(t, func(n int, conn net.Conn) {
		_, _ = conn.Write([]byte("ready"))
		dec := json.NewDecoder(conn)
		for {
			var req reconnectingpty.Request
			if dec.Decode(&req) != nil {
				return
			}
			data <- req.Data
		}
	})
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	out.waitFor(t, "ready")
	write(t, c, "a\xc3")
	write(t, c, "\xa9b")
	var got string
	for got != "aéb" {
		select {
		case d := <-data:
			got += d
		case <-time.After(waitTimeout):
			t.Fatalf("server got %q, want %q", got, "aéb")
		}
		if !strings.HasPrefix("aéb", got) {
			t.Fatalf("server got %q, want %q", got, "aéb")
		}
	}
	closeClient(t, c, out)
}

// TestDialError: the first connection is not retried.
func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, err = client.Dial(context.Background(), func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}, reconnectingpty.Init{}, client.Options{})
	if err == nil || !strings.Contains(err.Error(), "dial") {
		t.Fatalf("Dial error %v, want a dial error", err)
	}
}

// TestInputWhileDisconnected: input written while reconnecting is held and
// sent on the next connection.
func TestInputWhileDisconnected(t *testing.T) {
	data := make(chan string, 10)
	f := newFakeServer(t, func(n int, conn net.Conn) {
		_, _ = conn.Write([]byte("x"))
		if n == 0 {
			rptytest.ResetConn(conn)
			return
		}
		dec := json.NewDecoder(conn)
		for {
			var req reconnectingpty.Request
			if dec.Decode(&req) != nil {
				return
			}
			data <- req.Data
		}
	})
	ev := newEvents()
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, client.Options{
		OnState:    ev.record,
		MinBackoff: 300 * time.Millisecond,
		MaxBackoff: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	ev.waitFor(t, client.StateReconnecting)
	write(t, c, "queued")
	select {
	case d := <-data:
		if d != "queued" {
			t.Fatalf("second connection got %q", d)
		}
	case <-time.After(waitTimeout):
		t.Fatal("held input never sent")
	}
	closeClient(t, c, out)
}

// TestWriteBlocksWhenFull: with MaxPendingInput reached, Write waits, and
// Close releases it with ErrClosed.
func TestWriteBlocksWhenFull(t *testing.T) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	t.Cleanup(func() {
		close(release)
		wg.Wait()
	})
	dial := func(context.Context) (net.Conn, error) {
		clientSide, serverSide := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer serverSide.Close()
			if _, err := reconnectingpty.ReadInit(serverSide); err != nil {
				return
			}
			_, _ = serverSide.Write([]byte("x"))
			// Never read the requests: the client's writer blocks.
			<-release
		}()
		return clientSide, nil
	}
	c, err := client.Dial(context.Background(), dial, reconnectingpty.Init{}, client.Options{MaxPendingInput: 16})
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	out.waitFor(t, "x")
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 1000))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("Write returned %v with the connection stalled and 16 bytes of room", err)
	case <-time.After(200 * time.Millisecond):
	}
	closeClient(t, c, out)
	if err := <-wrote; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("blocked Write after Close: %v, want ErrClosed", err)
	}
}

// TestResizeOrderedWithInput: input written before Resize is sent before
// the resize request, input written after it after, even when all of it
// is queued while the connection is not writable.
func TestResizeOrderedWithInput(t *testing.T) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	reqs := make(chan reconnectingpty.Request, 10)
	t.Cleanup(wg.Wait)
	dial := func(context.Context) (net.Conn, error) {
		clientSide, serverSide := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer serverSide.Close()
			if _, err := reconnectingpty.ReadInit(serverSide); err != nil {
				return
			}
			_, _ = serverSide.Write([]byte("x"))
			<-release // the client queues everything meanwhile
			dec := json.NewDecoder(serverSide)
			for {
				var req reconnectingpty.Request
				if dec.Decode(&req) != nil {
					return
				}
				reqs <- req
			}
		}()
		return clientSide, nil
	}
	c, err := client.Dial(context.Background(), dial, reconnectingpty.Init{Height: 24, Width: 80}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	out.waitFor(t, "x")
	write(t, c, "before")
	if err := c.Resize(5, 6); err != nil {
		t.Fatal(err)
	}
	write(t, c, "after")
	close(release)
	// A transcript of the requests: input as it is, a resize as |HxW|.
	// Input may come in more requests than it was written in.
	var got string
	for !strings.Contains(got, "after") || !strings.Contains(got, "|") {
		select {
		case req := <-reqs:
			got += req.Data
			if req.Height != 0 {
				got += fmt.Sprintf("|%dx%d|", req.Height, req.Width)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("requests so far %q", got)
		}
	}
	if want := "before|5x6|after"; got != want {
		t.Fatalf("requests %q, want %q", got, want)
	}
	closeClient(t, c, out)
}

// TestCloseDuringOutputIsAGracefulHangUp pins that closing a client while
// output is pouring in shows on the server as the client leaving, not as
// a network failure: a TCP socket closed with unread output in it would be
// reset instead.
func TestCloseDuringOutputIsAGracefulHangUp(t *testing.T) {
	reasons := make(chan string, 4)
	ln := rptytest.StartServer(t, reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:   reconnectingpty.BackendBuffered,
		ReportConnection: func(uuid.UUID, string) func(int, string) {
			return func(_ int, reason string) { reasons <- reason }
		},
	})
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, dial, reconnectingpty.Init{Height: 24, Width: 80, Command: "yes flood"}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Take some output, then stop reading while the flood goes on.
	buf := make([]byte, 64<<10)
	for got := 0; got < 256<<10; {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	// Let the flood fill the client's buffers and the socket: a plain
	// close now would find unread output in it.
	time.Sleep(300 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-reasons:
		if reason != string(reconnectingpty.DisconnectGraceful) {
			t.Fatalf("server saw the close as %s, want graceful", reason)
		}
	case <-ctx.Done():
		t.Fatal("server never reported the close")
	}
}
