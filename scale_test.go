package reconnectingpty

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/uuid"
)

// ensurePTYs raises the kernel's PTY limit, if it is too low for n more
// PTYs and the test may, and returns how to put it back.
func ensurePTYs(tb testing.TB, n int) func() {
	tb.Helper()
	read := func(name string) int {
		b, err := os.ReadFile("/proc/sys/kernel/pty/" + name)
		if err != nil {
			return 0
		}
		v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return v
	}
	// A devpts instance other than the initial one gets max - reserve.
	maxPTY, reserve, used := read("max"), read("reserve"), read("nr")
	if maxPTY == 0 || used+n+64 <= maxPTY-reserve {
		return func() {}
	}
	want := used + n + 64 + reserve
	if err := os.WriteFile("/proc/sys/kernel/pty/max", []byte(strconv.Itoa(want)), 0o644); err != nil {
		tb.Skipf("%d PTYs needed, the kernel allows %d and the limit cannot be raised: %v", n, maxPTY-reserve-used, err)
	}
	return func() { _ = os.WriteFile("/proc/sys/kernel/pty/max", []byte(strconv.Itoa(maxPTY)), 0o644) }
}

// scaleResult is what runScale measured.
type scaleResult struct {
	start, shutdown time.Duration
	newSession      []time.Duration // dial to first output, each a new session
	bare            []time.Duration // the same command on a bare PTY, no server
	cleanEOFs       int
}

// runScale starts n idle buffered sessions on one server over loopback
// TCP, times new sessions among them, and shuts the server down with
// attached clients, checking that every one of them gets a clean EOF and
// that no process, connection or session is left.
func runScale(tb testing.TB, n, probes, attached int) scaleResult {
	tb.Helper()
	defer ensurePTYs(tb, n+probes+attached)()
	marker := randomMarker()
	srv, err := NewServer(Config{
		Backend: BackendBuffered, Commander: markedCommander{marker: marker},
		Timeout: time.Hour, MaxSessions: -1, MaxConnections: -1,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, served := serveTCP(tb, srv, ctx, context.Background())
	var res scaleResult

	open := func(id uuid.UUID, command, want string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(longWait))
		if err := WriteInit(c, Init{ID: id, Height: 24, Width: 80, Command: command}); err != nil {
			c.Close()
			return nil, err
		}
		var got []byte
		buf := make([]byte, 1024)
		for !strings.Contains(string(got), want) {
			m, err := c.Read(buf)
			got = append(got, buf[:m]...)
			if err != nil {
				c.Close()
				return nil, err
			}
		}
		_ = c.SetDeadline(time.Time{})
		return c, nil
	}

	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := open(uuid.New(), "echo up; exec sleep 100000", "up")
				if err != nil {
					errs <- err
					continue
				}
				// Detach: the session lives on, idle.
				c.(*net.TCPConn).CloseWrite() //nolint:errcheck // a hang-up
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("starting %d sessions: %v", n, err)
	}
	res.start = time.Since(began)

	for i := 0; i < probes; i++ {
		res.bare = append(res.bare, bareStart(tb, "echo probe-out", "probe-out"))
		t0 := time.Now()
		c, err := open(uuid.New(), "echo probe-out; exec sleep 100000", "probe-out")
		if err != nil {
			tb.Fatal(err)
		}
		res.newSession = append(res.newSession, time.Since(t0))
		c.Close()
	}

	clients := make([]net.Conn, attached)
	for i := range clients {
		if clients[i], err = open(uuid.New(), "echo attached; exec sleep 100000", "attached"); err != nil {
			tb.Fatal(err)
		}
	}
	var eofs sync.WaitGroup
	var mu sync.Mutex
	for _, c := range clients {
		eofs.Add(1)
		go func() {
			defer eofs.Done()
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(2 * longWait))
			if _, err := io.Copy(io.Discard, c); err == nil {
				mu.Lock()
				res.cleanEOFs++
				mu.Unlock()
			}
		}()
	}
	began = time.Now()
	cancel()
	if err := <-served; err != nil {
		tb.Fatal(err)
	}
	res.shutdown = time.Since(began)
	eofs.Wait()
	if srv.ConnCount() != 0 {
		tb.Fatalf("ConnCount %d after shutdown", srv.ConnCount())
	}
	deadline := time.Now().Add(shortWait)
	for pids := markedProcesses(marker); len(pids) > 0; pids = markedProcesses(marker) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d processes left after shutdown", len(pids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return res
}

// bareStart is the baseline of a new session: the time to start command
// on a PTY of its own with creack/pty and read want from it.
func bareStart(tb testing.TB, command, want string) time.Duration {
	tb.Helper()
	t0 := time.Now()
	cmd := exec.Command("/bin/bash", "-c", command)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		_ = f.Close()
		_ = cmd.Wait()
	}()
	var got []byte
	buf := make([]byte, 1024)
	for !strings.Contains(string(got), want) {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			tb.Fatalf("bare pty: %v after %q", err, got)
		}
	}
	return time.Since(t0)
}

func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}

// TestScale starts many idle sessions, serves new ones among them and
// shuts down with clients attached: every client gets a clean EOF and
// nothing is left. 150 sessions by default; RPTY_SCALE=3000 for the full
// figure (BenchmarkScale measures the same at 1,000 and 3,000).
func TestScale(t *testing.T) {
	n := 150
	if v := os.Getenv("RPTY_SCALE"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("RPTY_SCALE=%q: %v", v, err)
		}
	}
	res := runScale(t, n, 20, 20)
	if res.cleanEOFs != 20 {
		t.Fatalf("%d of 20 attached clients got a clean EOF at shutdown", res.cleanEOFs)
	}
	t.Logf("%d sessions: started in %s, new session p99 %s, shutdown %s",
		n, res.start.Round(time.Millisecond), p99(res.newSession).Round(time.Microsecond), res.shutdown.Round(time.Millisecond))
}

// BenchmarkScale reports, for a server with n idle buffered sessions, the
// time to start them, the p99 time from dialling to the first output of a
// new session among them (and, as the same run's baseline, the p99 time
// to start the same command on a bare PTY and read its output), and the time to shut down with 50 clients
// attached (all of which must get a clean EOF). Run with:
//
//	go test -run '^$' -bench Scale -benchtime 1x .
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{0, 1000, 3000} {
		b.Run("sessions="+strconv.Itoa(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res := runScale(b, n, 200, 50)
				if res.cleanEOFs != 50 {
					b.Fatalf("%d of 50 attached clients got a clean EOF", res.cleanEOFs)
				}
				b.ReportMetric(res.start.Seconds(), "start-s")
				b.ReportMetric(float64(p99(res.newSession).Microseconds())/1000, "new-session-p99-ms")
				b.ReportMetric(float64(p99(res.bare).Microseconds())/1000, "bare-p99-ms")
				b.ReportMetric(float64(p99(res.newSession))/float64(p99(res.bare)), "p99-x-bare")
				b.ReportMetric(res.shutdown.Seconds(), "shutdown-s")
			}
		})
	}
}
