package reconnectingpty

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// vtBenchSessions is how many live vt sessions BenchmarkVTReattach keeps.
const vtBenchSessions = 200

// vtBenchPrint prints about 64 KiB: 1,100 lines of 60 characters, which
// fills 1,000 lines of scrollback at 80x24.
const vtBenchPrint = `awk 'BEGIN { for (i = 0; i < 1100; i++) printf "%05d %s\n", i, substr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 1 + i % 7, 54) }'`

// vtBenchOutput is vtBenchPrint, a marker, then a process that waits for
// input.
const vtBenchOutput = vtBenchPrint + `; echo vt-bench-""ready; exec cat`

// BenchmarkVTReattach measures a reattach to one of 200 live vt sessions
// that have each printed about 64 KiB and hold 1,000 lines of scrollback:
// the time from dialling (loopback TCP) to the last byte of the snapshot,
// as the mean and the 99th percentile over b.N reattaches spread over the
// sessions. Run with:
//
//	go test -run '^$' -bench VTReattach -benchtime 1000x .
func BenchmarkVTReattach(b *testing.B) {
	// The snapshots' lengths are measured with every session attached at
	// once: more connections may wait for their init than by default.
	srv, err := NewServer(Config{Backend: BackendVT, Commander: LocalCommander{Shell: "/bin/sh"}, MaxStartups: -1})
	if err != nil {
		b.Fatal(err)
	}
	addr, stop := serveLoopback(b, srv)
	defer stop()
	defer srv.Close()

	dial := func(id uuid.UUID) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(longWait))
		if err := WriteInit(c, Init{ID: id, Height: 24, Width: 80, Command: vtBenchOutput}); err != nil {
			b.Fatal(err)
		}
		return c
	}
	// Start the sessions; each one's snapshot is as long every time, as
	// the sessions are idle: measure it once.
	ids := make([]uuid.UUID, vtBenchSessions)
	snapLen := make([]int, vtBenchSessions)
	for i := range ids {
		ids[i] = uuid.New()
		c := dial(ids[i])
		readUntilBench(b, c, []byte("vt-bench-ready\r\n"))
		closeAndDrain(c)
	}
	waitNoConns(srv)
	// All at once, so that waiting for the end of one snapshot (silence)
	// overlaps with the others.
	conns := make([]net.Conn, len(ids))
	for i, id := range ids {
		conns[i] = dial(id)
	}
	time.Sleep(time.Second)
	for i, c := range conns {
		snapLen[i] = len(readQuiet(b, c))
		closeAndDrain(c)
	}
	waitNoConns(srv)

	times := make([]time.Duration, 0, b.N)
	buf := make([]byte, 64<<10)
	b.ResetTimer()
	for i := range b.N {
		s := i % vtBenchSessions
		start := time.Now()
		c := dial(ids[s])
		// Read exactly the snapshot's length.
		got := 0
		for got < snapLen[s] {
			n, err := c.Read(buf)
			got += n
			if err != nil {
				b.Fatalf("session %d: read %d of %d snapshot bytes: %v", s, got, snapLen[s], err)
			}
		}
		times = append(times, time.Since(start))
		b.StopTimer()
		// More than measured means the snapshot was longer than thought,
		// and the times too short.
		if got != snapLen[s] {
			b.Fatalf("session %d: snapshot of %d bytes, measured %d", s, got, snapLen[s])
		}
		closeAndDrain(c)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(times)
	var sum time.Duration
	for _, d := range times {
		sum += d
	}
	mean := sum / time.Duration(len(times))
	p50 := times[len(times)/2]
	p99 := times[min(len(times)-1, len(times)*99/100)]
	b.ReportMetric(float64(mean.Microseconds())/1000, "ms/reattach")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms/reattach")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms/reattach")
	b.ReportMetric(float64(slices.Max(snapLen))/1024, "max-snapshot-KiB")
	waitNoConns(srv)
}

func readUntilBench(b *testing.B, c net.Conn, want []byte) {
	b.Helper()
	var out []byte
	buf := make([]byte, 32<<10)
	for !bytes.Contains(out, want) {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			b.Fatalf("read: %v; output %q", err, tail(string(out)))
		}
	}
}

// readQuiet reads until nothing has come for 100 ms.
func readQuiet(b *testing.B, c net.Conn) []byte {
	b.Helper()
	var out []byte
	buf := make([]byte, 32<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = c.SetReadDeadline(time.Time{})
				return out
			}
			b.Fatalf("read snapshot: %v", err)
		}
	}
}

// closeAndDrain hangs up cleanly: half-close, then read to the server's EOF.
func closeAndDrain(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(longWait))
		_, _ = io.Copy(io.Discard, c)
	}
	_ = c.Close()
}

func waitNoConns(srv *Server) {
	for srv.ConnCount() > 0 {
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkIdleVTSession measures what an idle vt session costs the
// server: 80x24 with its 1,000 lines of scrollback full of 60-character
// lines (about 64 KiB printed), no connection attached. Go heap and
// goroutines per session, against the same server before the sessions,
// over 200 sessions; the process is not counted (BenchmarkScreenReattach
// reports the processes' RSS and PSS per backend). Run with:
//
//	go test -run '^$' -bench IdleVTSession -benchtime 1x -count 3 .
func BenchmarkIdleVTSession(b *testing.B) {
	for i := 0; i < b.N; i++ {
		heap, goroutines := idleSessionCost(b, BackendVT, vtBenchPrint)
		b.ReportMetric(heap, "heap-B/session")
		b.ReportMetric(goroutines, "goroutines/session")
	}
}
