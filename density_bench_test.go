package reconnectingpty

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
)

// idleSessions is how many sessions BenchmarkIdleSession keeps alive.
const idleSessions = 200

// BenchmarkIdleSession measures what an idle buffered session costs the
// server once a few KiB of output (seq 1 1000) have gone by and its connection has
// detached: Go heap and goroutines per session (its process is not
// counted). The figures are deltas against the same server with no
// session, measured in the same iteration. Run with:
//
//	go test -run '^$' -bench IdleSession -benchtime 1x -count 3 .
func BenchmarkIdleSession(b *testing.B) {
	for i := 0; i < b.N; i++ {
		heap, goroutines := idleSessionCost(b, BackendBuffered, "seq 1 1000")
		b.ReportMetric(heap, "heap-B/session")
		b.ReportMetric(goroutines, "goroutines/session")
	}
}

// idleSessionCost starts idleSessions sessions of backend that each run
// output, then wait for input with no connection, and returns the heap and
// goroutines each costs.
func idleSessionCost(b *testing.B, backend BackendType, output string) (heapPerSession, goroutinesPerSession float64) {
	b.Helper()
	srv, err := NewServer(Config{Backend: backend, Commander: LocalCommander{Shell: "/bin/sh"}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	heap0, g0 := settledHeap()

	const ready = "idle-session-ready"
	init := Init{Height: 24, Width: 80, Command: output + "; echo " + ready + "; exec cat", BackendType: string(backend)}
	for i := 0; i < idleSessions; i++ {
		init.ID = uuid.New()
		client, server := net.Pipe()
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = srv.ServeConn(context.Background(), server)
		}()
		if err := WriteInit(client, init); err != nil {
			b.Fatal(err)
		}
		_ = client.SetReadDeadline(time.Now().Add(longWait))
		var out []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(out, []byte(ready+"\r\n")) {
			n, err := client.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				b.Fatalf("session %d: %v after %q", i, err, out)
			}
		}
		// A pending deadline's timer would keep the pipe alive: clear it.
		_ = client.SetReadDeadline(time.Time{})
		_ = client.Close()
		<-served
	}
	heap1, g1 := settledHeap()
	return float64(heap1-heap0) / idleSessions, float64(g1-g0) / idleSessions
}

// settledHeap collects garbage until the live heap stops shrinking and
// returns it with the goroutine count.
func settledHeap() (heap uint64, goroutines int) {
	var ms runtime.MemStats
	prev := ^uint64(0)
	for i := 0; i < 10; i++ {
		time.Sleep(20 * time.Millisecond) // let exiting goroutines finish
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc >= prev {
			break
		}
		prev = ms.HeapAlloc
	}
	return ms.HeapAlloc, runtime.NumGoroutine()
}
