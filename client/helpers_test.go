package client_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// waitTimeout bounds every wait for expected output or events.
const waitTimeout = 20 * time.Second

// shellCommand starts bash without rc files, so the user's setup cannot
// change prompts or output.
const shellCommand = "bash --norc --noprofile"

// testServer is an in-process server on a loopback listener.
type testServer struct {
	ln *rptytest.TrackingListener
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.addr())
}

func newServer(t *testing.T) *testServer {
	t.Helper()
	ln := rptytest.StartServer(t, reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:   reconnectingpty.BackendBuffered,
	})
	return &testServer{ln: ln}
}

// pipeDialer serves each dial on a net.Pipe with ServeConn.
type pipeDialer struct {
	srv *reconnectingpty.Server
	ctx context.Context
	wg  sync.WaitGroup
}

func newPipeDialer(t *testing.T) *pipeDialer {
	t.Helper()
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:   reconnectingpty.BackendBuffered,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &pipeDialer{srv: srv, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		_ = srv.Close()
		d.wg.Wait()
	})
	return d
}

func (d *pipeDialer) dial(context.Context) (net.Conn, error) {
	clientSide, serverSide := net.Pipe()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = d.srv.ServeConn(d.ctx, serverSide)
	}()
	return clientSide, nil
}

// output collects everything read from a client.
type output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	err  error
	done chan struct{}
}

// readOutput reads c until Read fails. The test must end the client
// (Close, or the session ending) and then call wait.
func readOutput(c *client.Client) *output {
	o := &output{done: make(chan struct{})}
	go func() {
		defer close(o.done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			o.mu.Lock()
			o.buf.Write(buf[:n])
			if err != nil {
				o.err = err
			}
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor polls until the output contains s.
func (o *output) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in output:\n%q", s, o.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the reader to stop and returns Read's final error.
func (o *output) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-o.done:
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for Read to return an error")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// events records state changes.
type events struct {
	ch chan client.Event
}

func newEvents() *events { return &events{ch: make(chan client.Event, 1000)} }

func (e *events) record(ev client.Event) { e.ch <- ev }

// waitFor returns the next event in state s, skipping others.
func (e *events) waitFor(t *testing.T, s client.State) client.Event {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev := <-e.ch:
			if ev.State == s {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for state %s", s)
		}
	}
}
