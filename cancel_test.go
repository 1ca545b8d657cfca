package reconnectingpty

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestServeConnCancelAtAnyMomentReturns pins that cancelling ServeConn's
// ctx ends the connection and ServeConn returns promptly, whenever it
// happens: before the init, in the middle of it, right after it, once
// attached, and while output flows; over net.Pipe and over TCP.
func TestServeConnCancelAtAnyMomentReturns(t *testing.T) {
	ts := newTestServer(t, BackendBuffered, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	transports := map[string]func() (client, server net.Conn){
		"pipe": func() (net.Conn, net.Conn) { return net.Pipe() },
		"tcp": func() (net.Conn, net.Conn) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			return c, s
		},
	}
	shell := uuid.New()
	flow := uuid.New()
	frame := func(id uuid.UUID, command string) []byte {
		body, _ := json.Marshal(Init{ID: id, Height: 24, Width: 80, Command: command})
		return binary.LittleEndian.AppendUint16(nil, uint16(len(body))) //nolint:gosec // small
	}
	initOf := func(id uuid.UUID, command string) []byte {
		body, _ := json.Marshal(Init{ID: id, Height: 24, Width: 80, Command: command})
		return append(frame(id, command), body...)
	}
	phases := []struct {
		name string
		// run talks to the server until the moment of the cancel.
		run func(c net.Conn, out <-chan struct{})
	}{
		{"before_init", func(net.Conn, <-chan struct{}) {}},
		{"mid_init", func(c net.Conn, _ <-chan struct{}) {
			b := initOf(shell, testShell)
			_, _ = c.Write(b[:len(b)/2])
		}},
		{"right_after_init", func(c net.Conn, _ <-chan struct{}) {
			_, _ = c.Write(initOf(shell, testShell))
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		}},
		{"attached", func(c net.Conn, out <-chan struct{}) {
			_, _ = c.Write(initOf(shell, testShell))
			<-out
		}},
		{"output_flowing", func(c net.Conn, out <-chan struct{}) {
			_, _ = c.Write(initOf(flow, "yes flowing-output"))
			<-out
			time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
		}},
	}
	const rounds = 12
	for name, newConn := range transports {
		for _, ph := range phases {
			for i := 0; i < rounds; i++ {
				client, server := newConn()
				ctx, cancel := context.WithCancel(context.Background())
				served := make(chan struct{})
				go func() {
					defer close(served)
					_ = ts.srv.ServeConn(ctx, server)
				}()
				// The client reads everything, like a live terminal, and
				// tells the phase when output arrives.
				out := make(chan struct{})
				drained := make(chan struct{})
				go func() {
					defer close(drained)
					buf := make([]byte, 32<<10)
					first := true
					for {
						n, err := client.Read(buf)
						if n > 0 && first {
							first = false
							close(out)
						}
						if err != nil {
							if first {
								close(out)
							}
							return
						}
					}
				}()
				_ = client.SetWriteDeadline(time.Now().Add(shortWait))
				ph.run(client, out)
				cancel()
				select {
				case <-served:
				case <-time.After(shortWait / 4):
					t.Fatalf("%s/%s round %d: ServeConn still running %s after its ctx was cancelled", name, ph.name, i, shortWait/4)
				}
				_ = client.Close()
				<-drained
			}
		}
	}
}

// TestServeConnCancelStopsABlockedInputWrite pins that cancelling a
// connection's ctx also ends a write of its input that waits for a
// program that reads nothing, and leaves the session to the others.
func TestServeConnCancelStopsABlockedInputWrite(t *testing.T) {
	ts := newTestServer(t, BackendBuffered, Config{})
	id := uuid.New()
	// Raw, so that the line discipline queues input rather than dropping
	// what does not fit a line.
	owner := ts.connect(Init{ID: id, Command: "stty raw -echo; echo sleeping; exec sleep 1000"})
	owner.expect("sleeping")

	client, server := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = ts.srv.ServeConn(ctx, server)
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	if err := WriteInit(client, Init{ID: id, Height: 24, Width: 80}); err != nil {
		t.Fatal(err)
	}
	// Far more than the terminal's input queue: the write blocks.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_ = client.SetWriteDeadline(time.Now().Add(shortWait))
		_, _ = io.WriteString(client, `{"data":"`+strings.Repeat("y", 1<<20)+`"}`)
	}()
	time.Sleep(500 * time.Millisecond)
	cancel()
	select {
	case <-served:
	case <-time.After(shortWait / 4):
		t.Fatal("ServeConn still blocked writing input after its ctx was cancelled")
	}
	_ = client.Close()
	<-wrote
	// The session lives on for its other connection.
	owner.send(Request{Data: "x"})
	if ts.srv.ConnCount() != 1 {
		t.Fatalf("ConnCount = %d, want the owner's 1", ts.srv.ConnCount())
	}
}

// TestShutdownStopsABlockedInputWrite pins that a graceful shutdown does
// not wait for a connection whose input the program never read.
func TestShutdownStopsABlockedInputWrite(t *testing.T) {
	ts := newTestServer(t, BackendBuffered, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	addr, served := serveTCP(t, ts.srv, ctx, context.Background())
	c := dialTCP(t, addr)
	if err := WriteInit(c, Init{ID: uuid.New(), Height: 24, Width: 80, Command: "stty raw -echo; echo sleeping; exec sleep 1000"}); err != nil {
		t.Fatal(err)
	}
	tc := newTestClient(t, c)
	tc.expect("sleeping")
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_ = c.SetWriteDeadline(time.Now().Add(shortWait))
		_, _ = io.WriteString(c, `{"data":"`+strings.Repeat("y", 4<<20)+`"}`)
	}()
	time.Sleep(500 * time.Millisecond)
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(shortWait / 2):
		t.Fatal("the shutdown waits for a write of input the program never reads")
	}
	tc.expectEOF()
	<-wrote
}
