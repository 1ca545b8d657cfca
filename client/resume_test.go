package client_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// eventStream reads a client in one goroutine and records, in the same
// order, output and the events Read reports.
type eventStream struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	log  []string // "reset@N" / "replay@N": an event before byte N
	done chan struct{}
}

// newEventStream sets opts' event hooks to record into the stream.
func newEventStream(opts *client.Options) *eventStream {
	s := &eventStream{done: make(chan struct{})}
	mark := func(what string) func() {
		return func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.log = append(s.log, what+"@"+itoa(s.buf.Len()))
		}
	}
	opts.OnReset = mark("reset")
	opts.OnReplay = mark("replay")
	return s
}

func (s *eventStream) run(c *client.Client) {
	go func() {
		defer close(s.done)
		buf := make([]byte, 7) // small reads: events must stay in order
		for {
			n, err := c.Read(buf)
			s.mu.Lock()
			s.buf.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

func (s *eventStream) snapshot() (string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String(), append([]string(nil), s.log...)
}

func (s *eventStream) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		out, _ := s.snapshot()
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in %q", want, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// writeSlowly writes p a few bytes at a time, so that the client gets it
// split across reads.
func writeSlowly(conn net.Conn, p string) {
	for i := 0; i < len(p); i += 3 {
		_, _ = conn.Write([]byte(p[i:min(i+3, len(p))]))
		time.Sleep(time.Millisecond)
	}
}

// TestResumeHeadersSplitAcrossReads plays a server with the extension:
// the client sends the offset it has, a delta continues the stream with no
// event, and a reset reports OnReset just before its redraw; the redraw is
// not counted in the next offset. Every header arrives in pieces.
func TestResumeHeadersSplitAcrossReads(t *testing.T) {
	const (
		delta0 = "\x1b_rpty;v=1;mode=delta;offset=0\x1b\\"
		delta3 = "\x1b_rpty;v=1;mode=delta;offset=3\x1b\\"
		reset  = "\x1b_rpty;v=1;mode=reset;offset=100;len=5\x1b\\"
	)
	f := newFakeServer(t, func(n int, conn net.Conn) {
		switch n {
		case 0:
			writeSlowly(conn, delta0+"abc")
		case 1:
			writeSlowly(conn, delta3+"def")
		case 2:
			writeSlowly(conn, reset+"REDRWlive")
		default:
			writeSlowly(conn, "\x1b_rpty;v=1;mode=delta;offset=104\x1b\\"+"end")
			drain(conn)
			return
		}
		time.Sleep(20 * time.Millisecond)
		rptytest.ResetConn(conn)
	})
	opts := fastRetry
	s := newEventStream(&opts)
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.run(c)
	for i, want := range []uint64{0, 3, 6, 104} {
		init := f.nextInit(t)
		if !init.Resume || init.Offset != want {
			t.Fatalf("init %d: Resume %v, Offset %d; want Resume at %d", i, init.Resume, init.Offset, want)
		}
	}
	s.waitFor(t, "end")
	out, log := s.snapshot()
	if out != "abcdefREDRWliveend" {
		t.Fatalf("stream %q, want the headers stripped and nothing repeated", out)
	}
	if len(log) != 1 || log[0] != "reset@6" {
		t.Fatalf("events %v, want one reset just before the redraw (reset@6)", log)
	}
	_ = c.Close()
	<-s.done
}

// TestResumeAgainstAnOldServer: a server without the extension sends no
// header. The client passes its output through untouched and reports its
// replay with OnReplay, as it did before resume existed.
func TestResumeAgainstAnOldServer(t *testing.T) {
	f := newFakeServer(t, func(n int, conn net.Conn) {
		// An old server's replay can start with an escape sequence.
		writeSlowly(conn, "\x1b[0mreplay-"+itoa(n)+";")
		if n < 2 {
			time.Sleep(20 * time.Millisecond)
			rptytest.ResetConn(conn)
			return
		}
		drain(conn)
	})
	opts := fastRetry
	s := newEventStream(&opts)
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.run(c)
	s.waitFor(t, "replay-2;")
	for i := 0; i < 3; i++ {
		if init := f.nextInit(t); !init.Resume {
			t.Fatalf("init %d does not ask to resume", i)
		}
	}
	out, log := s.snapshot()
	first := len("\x1b[0mreplay-0;")
	if want := "\x1b[0mreplay-0;\x1b[0mreplay-1;\x1b[0mreplay-2;"; out != want {
		t.Fatalf("stream %q, want %q", out, want)
	}
	if want := []string{"replay@" + itoa(first), "replay@" + itoa(2*first)}; strings.Join(log, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", log, want)
	}
	_ = c.Close()
	<-s.done
}

// TestSlowResumingClientIsRedrawnAndOthersKeepTheirRate floods a session
// with a client reading at 256 KB/s and one reading as fast as it can. The
// slow one falls ConnQueueSize behind and is cut off rather than pacing
// the program (it is reset at least once), and resumes with a reset; it
// ends showing exactly the session's final output. The fast one is never
// cut off and gets every byte. (Its rate is a benchmark's business:
// BenchmarkThroughput/ten_clients_one_stalled; here it is only logged.)
func TestSlowResumingClientIsRedrawnAndOthersKeepTheirRate(t *testing.T) {
	const (
		flood    = 16 << 20
		slowRate = 256 << 10 // bytes per second
		end      = "END-OF-FLOOD\r\n"
	)
	ln := rptytest.StartServer(t, reconnectingpty.Config{
		Commander:     reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:       reconnectingpty.BackendBuffered,
		BufferSize:    16 << 10,
		ConnQueueSize: 4 << 20,
	})
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	id := uuid.New()
	init := reconnectingpty.Init{
		ID: id, Height: 24, Width: 80, BackendType: string(reconnectingpty.BackendBuffered),
		Command: "read go; yes 'a line of flood output from the program' | head -c " + itoa(flood) + "; echo; echo END-OF\"\"-FLOOD; read x",
	}

	var resets atomic.Int32
	var mu sync.Mutex
	var slow bytes.Buffer
	lastReset := 0
	opts := client.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnReset: func() {
			resets.Add(1)
			mu.Lock()
			lastReset = slow.Len()
			mu.Unlock()
		}}
	c, err := client.Dial(context.Background(), dial, init, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		buf := make([]byte, 16<<10)
		tick := time.Duration(len(buf)) * time.Second / slowRate
		for {
			n, err := c.Read(buf)
			mu.Lock()
			slow.Write(buf[:n])
			got := bytes.Contains(slow.Bytes()[max(0, slow.Len()-n-len(end)):], []byte(end))
			mu.Unlock()
			if err != nil || got {
				return
			}
			time.Sleep(tick)
		}
	}()

	fast, err := dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	if err := reconnectingpty.WriteInit(fast, init); err != nil {
		t.Fatal(err)
	}
	if err := reconnectingpty.WriteRequest(fast, reconnectingpty.Request{Data: "go\r"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var whole bytes.Buffer
	buf := make([]byte, 64<<10)
	_ = fast.SetReadDeadline(time.Now().Add(2 * waitTimeout))
	for !bytes.HasSuffix(whole.Bytes(), []byte(end)) {
		n, err := fast.Read(buf)
		whole.Write(buf[:n])
		if err != nil {
			t.Fatalf("fast reader: %v after %d bytes", err, whole.Len())
		}
	}
	elapsed := time.Since(start)
	select {
	case <-slowDone:
	case <-time.After(2 * waitTimeout):
		mu.Lock()
		t.Fatalf("the slow client never showed the end; it has %d bytes", slow.Len())
	}
	mu.Lock()
	defer mu.Unlock()
	if resets.Load() == 0 {
		t.Fatalf("the slow client was never reset, so it paced the program: it read %d bytes of %d", slow.Len(), whole.Len())
	}
	if !bytes.Contains(whole.Bytes()[:min(whole.Len(), 4096)], []byte("go\r\n")) || whole.Len() < flood {
		t.Fatalf("the fast reader missed output: %d bytes", whole.Len())
	}
	// Since its last reset the slow client shows a redraw cut from the
	// session's output and the live output after it: together, the end of
	// what the fast one saw.
	since := slow.Bytes()[lastReset:]
	if !bytes.HasSuffix(whole.Bytes(), since) || len(since) < len(end) {
		t.Fatalf("after its last reset the slow client shows %d bytes that are not the end of the output: ...%q",
			len(since), since[max(0, len(since)-200):])
	}
	t.Logf("fast reader: %d bytes in %s; slow client: %d bytes, %d resets", whole.Len(), elapsed.Round(time.Millisecond), slow.Len(), resets.Load())
}

// TestCutInsideARedrawAsksForANewOne: a connection that drops before its
// redraw is complete leaves the terminal half drawn, so the next resume
// names an offset no session reaches, which the server answers with a
// fresh reset.
func TestCutInsideARedrawAsksForANewOne(t *testing.T) {
	f := newFakeServer(t, func(n int, conn net.Conn) {
		switch n {
		case 0:
			writeSlowly(conn, "\x1b_rpty;v=1;mode=reset;offset=40;len=10\x1b\\"+"HALF")
			time.Sleep(20 * time.Millisecond)
			rptytest.ResetConn(conn)
		case 1:
			writeSlowly(conn, "\x1b_rpty;v=1;mode=reset;offset=50;len=2\x1b\\"+"RRx")
			time.Sleep(20 * time.Millisecond)
			rptytest.ResetConn(conn)
		default:
			writeSlowly(conn, "\x1b_rpty;v=1;mode=delta;offset=51\x1b\\"+"y")
			drain(conn)
		}
	})
	opts := fastRetry
	s := newEventStream(&opts)
	c, err := client.Dial(context.Background(), f.dial, reconnectingpty.Init{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.run(c)
	if init := f.nextInit(t); init.Offset != 0 {
		t.Fatalf("first init offset %d", init.Offset)
	}
	if init := f.nextInit(t); init.Offset != 1<<64-1 {
		t.Fatalf("after a cut redraw the init names offset %d, want 2^64-1", init.Offset)
	}
	// The complete redraw is not counted: 50 plus the live "x".
	if init := f.nextInit(t); init.Offset != 51 {
		t.Fatalf("after a complete reset the init names offset %d, want 51", init.Offset)
	}
	s.waitFor(t, "RRxy")
	if out, log := s.snapshot(); out != "HALFRRxy" || strings.Join(log, " ") != "reset@0 reset@4" {
		t.Fatalf("stream %q with events %v", out, log)
	}
	_ = c.Close()
	<-s.done
}
