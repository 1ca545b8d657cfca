package reconnectingpty

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// transcriptGreeting is the simplest terminal model there is: everything
// the program wrote, and every size it was given, in order. Greeting with
// it sends a late connection the whole output so far.
type transcriptGreeting struct {
	mu       sync.Mutex // only for the test's reads: the core holds its own lock
	seen     []byte
	sizes    []string
	attaches []int
}

func (g *transcriptGreeting) output(p []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, p...)
}

func (g *transcriptGreeting) finish() {}

func (g *transcriptGreeting) resized(h, w uint16) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sizes = append(g.sizes, strconv.Itoa(int(h))+"x"+strconv.Itoa(int(w)))
}

func (g *transcriptGreeting) attached(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.attaches = append(g.attaches, n)
}

func (g *transcriptGreeting) greet(dst []byte, _ *replayRing) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append(dst, g.seen...)
}

// TestGreetingSeesEverythingInOrder pins the contract a greeting (the vt
// backend's snapshot) relies on: it sees every chunk of output and every
// resize in order, and what it greets a connection with, followed by the
// live output, is exact. A late connection greeted with the whole
// transcript must therefore see exactly what the first one saw.
func TestGreetingSeesEverythingInOrder(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	cmd, err := ts.srv.cfg.Commander.Command(t.Context(), CommandRequest{Command: "seq 1 100000; sleep 0.2"})
	if err != nil {
		t.Fatal(err)
	}
	g := &transcriptGreeting{}
	ps, err := startPTYSession(ts.srv, BackendBuffered, g, cmd, 24, 80, ts.srv.logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ps.close(disconnect{reason: DisconnectServerShutdown})
		<-ps.done()
	}()
	readAll := func(req attachRequest) (<-chan string, attachment) {
		client, server := net.Pipe()
		t.Cleanup(func() { _ = client.Close() })
		a, err := ps.attach(&conn{Conn: server}, req)
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(client)
			out <- string(b)
		}()
		return out, a
	}
	first, a1 := readAll(attachRequest{height: 24, width: 80, queueSize: ts.srv.cfg.ConnQueueSize})
	defer a1.detach()
	// Join while the program is writing, at another size.
	for deadline := time.Now().Add(shortWait); ; {
		g.mu.Lock()
		n := len(g.seen)
		g.mu.Unlock()
		if n > 100<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no output")
		}
		time.Sleep(time.Millisecond)
	}
	late, a2 := readAll(attachRequest{height: 30, width: 100, queueSize: ts.srv.cfg.ConnQueueSize})
	defer a2.detach()

	want, got := <-first, <-late
	if !strings.HasSuffix(want, "\r\n100000\r\n") {
		t.Fatalf("the first connection's output ends %q", tail(want))
	}
	if got != want {
		t.Fatalf("late connection got %d bytes, the first %d: greeting plus live output is not exact", len(got), len(want))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if string(g.seen) != want {
		t.Fatalf("the greeting saw %d bytes of %d", len(g.seen), len(want))
	}
	if s := strings.Join(g.sizes, " "); s != "24x80 24x80 30x100" {
		t.Fatalf("the greeting saw sizes %s, want 24x80 (start) 24x80 30x100 (each attach)", s)
	}
	if a := g.attaches; len(a) < 2 || a[0] != 1 || a[1] != 2 {
		t.Fatalf("attach counts %v, want 1 then 2 first", a)
	}
}
