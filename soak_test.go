package reconnectingpty

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// openFDs is the number of this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestSoak churns connections over many sessions with random drops,
// resets, half-sent inits, malformed requests, exits and kills, then
// checks that file descriptors, goroutines, child processes, sessions and
// connections all return to where they were. It runs for 3 s by default;
// RPTY_SOAK=duration (e.g. RPTY_SOAK=10m) runs a long soak over more
// sessions.
func TestSoak(t *testing.T) {
	duration, sessions, workers := 3*time.Second, 40, 8
	if v := os.Getenv("RPTY_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RPTY_SOAK=%q: %v", v, err)
		}
		duration, sessions, workers = d, 300, 24
	}
	var started atomic.Int64
	marker := randomMarker()
	commander := commanderFunc(func(ctx context.Context, req CommandRequest) (*exec.Cmd, error) {
		started.Add(1)
		return markedCommander{marker: marker}.Command(ctx, req)
	})
	ts := newTestServer(t, BackendBuffered, Config{Timeout: 500 * time.Millisecond, Commander: commander})
	ts.marker = marker
	baseFDs, baseGoroutines := openFDs(t), runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	addr, served := serveTCP(t, ts.srv, ctx, ctx)

	ids := make([]uuid.UUID, sessions)
	for i := range ids {
		ids[i] = uuid.New()
	}
	var conns, ops [8]atomic.Int64
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				op := rand.IntN(len(ops))
				ops[op].Add(1)
				conns[op].Add(1)
				soakOnce(addr, ids[rand.IntN(len(ids))], op)
			}
		}()
	}
	wg.Wait()

	// Every connection ends, then every session times out on its own.
	waitConnCount(t, ts.srv, 0)
	settle := time.Now().Add(longWait)
	for testutil.ToFloat64(ts.srv.metrics.sessionsActive) != 0 {
		if time.Now().After(settle) {
			t.Fatalf("%v sessions still live after every connection left", testutil.ToFloat64(ts.srv.metrics.sessionsActive))
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.requireNoProcesses()
	var total int64
	for i := range conns {
		total += conns[i].Load()
	}
	t.Logf("soak: %s, %d workers, %d connections over %d session IDs, %d sessions started; by kind %v",
		duration, workers, total, sessions, started.Load(), opCounts(&ops))

	// Back to the baseline, with the server still up.
	for settle = time.Now().Add(shortWait); ; time.Sleep(20 * time.Millisecond) {
		fds, gs := openFDs(t), runtime.NumGoroutine()
		if fds <= baseFDs+1 && gs <= baseGoroutines+3 { // the listener and Serve's own
			break
		}
		if time.Now().After(settle) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after the soak: %d fds (baseline %d), %d goroutines (baseline %d)\n%s",
				fds, baseFDs, gs, baseGoroutines, buf[:runtime.Stack(buf, true)])
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if n := len(childProcesses()); n != 0 {
		t.Fatalf("%d child processes left", n)
	}
}

func opCounts(ops *[8]atomic.Int64) map[string]int64 {
	names := []string{"graceful", "drop", "reset", "half_init", "exit", "kill", "malformed", "timeout_wait"}
	out := map[string]int64{}
	for i, n := range names {
		out[n] = ops[i].Load()
	}
	return out
}

// soakOnce runs one client behaviour against session id; every step is
// bounded by a deadline, so a misbehaving server shows up as a leak or a
// stuck count rather than a hung worker.
func soakOnce(addr string, id uuid.UUID, op int) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	init := Init{ID: id, Height: 24, Width: 80, Command: testShell}
	if op == 3 { // half an init, then gone
		var frame writerBuffer
		_ = WriteInit(&frame, init)
		_, _ = c.Write(frame.b[:rand.IntN(len(frame.b))])
		return
	}
	if WriteInit(c, init) != nil {
		return
	}
	buf := make([]byte, 4096)
	_, _ = c.Read(buf) // the replay or the prompt
	switch op {
	case 0: // type, read, hang up cleanly
		_ = WriteRequest(c, Request{Data: "echo soak-" + strconv.Itoa(rand.IntN(1000)) + "\r", Height: 30, Width: 100})
		_, _ = c.Read(buf)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, c)
	case 1: // just drop
	case 2: // reset
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	case 4: // the shell exits
		_ = WriteRequest(c, Request{Data: "exit " + strconv.Itoa(rand.IntN(4)) + "\r"})
		_, _ = io.Copy(io.Discard, c)
	case 5: // the shell is killed, with a background job
		_ = WriteRequest(c, Request{Data: "sleep 60 & kill -9 $$\r"})
		_, _ = io.Copy(io.Discard, c)
	case 6: // a malformed request
		_, _ = c.Write([]byte(`{"data":`))
		_, _ = c.Write([]byte(`}`))
		_, _ = io.Copy(io.Discard, c)
	case 7: // linger a little, output flowing
		_ = WriteRequest(c, Request{Data: "seq 1 2000\r"})
		time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
	}
}

// commanderFunc is a Commander from a function.
type commanderFunc func(ctx context.Context, req CommandRequest) (*exec.Cmd, error)

func (f commanderFunc) Command(ctx context.Context, req CommandRequest) (*exec.Cmd, error) {
	return f(ctx, req)
}

// writerBuffer collects writes.
type writerBuffer struct{ b []byte }

func (w *writerBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
