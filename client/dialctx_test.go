package client_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
)

// TestDialContextLivesWithTheConnection pins the DialFunc contract: the
// dial's ctx lives as long as the connection, so a dial function can serve
// the connection in-process with it, and ends when the Client closes.
func TestDialContextLivesWithTheConnection(t *testing.T) {
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:   reconnectingpty.BackendBuffered,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		_ = srv.Close()
		wg.Wait()
	}()
	var dials atomic.Int32
	var ctxs []context.Context
	var mu sync.Mutex
	dial := func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		mu.Lock()
		ctxs = append(ctxs, ctx)
		mu.Unlock()
		clientSide, serverSide := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.ServeConn(ctx, serverSide)
		}()
		return clientSide, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, dial, reconnectingpty.Init{Height: 24, Width: 80, Command: shellCommand}, client.Options{DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	write(t, c, "echo in-\"\"process\r")
	out.waitFor(t, "in-process")
	// Well past the dial timeout, the connection is still the first one.
	time.Sleep(3 * time.Second)
	write(t, c, "echo still-\"\"here\r")
	out.waitFor(t, "still-here")
	if n := dials.Load(); n != 1 {
		t.Fatalf("dialled %d times, want 1: the dial's context ended with the dial", n)
	}
	mu.Lock()
	first := ctxs[0]
	mu.Unlock()
	if err := first.Err(); err != nil {
		t.Fatalf("the dial's context ended while its connection was in use: %v", err)
	}
	_ = c.Close()
	_ = out.wait(t)
	select {
	case <-first.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the dial's context outlived Close")
	}
}
