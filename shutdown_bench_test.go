package reconnectingpty

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// shutdownFleet is n buffered sessions, each with one TCP client that has
// seen its shell's prompt, served by one server.
type shutdownFleet struct {
	srv    *Server
	cancel context.CancelFunc
	served <-chan error
	conns  []net.Conn
}

// startShutdownFleet starts n sessions running an interactive shell, each
// attached over loopback TCP, and waits until every client has output.
func startShutdownFleet(tb testing.TB, n int, hardCtx context.Context) *shutdownFleet {
	tb.Helper()
	srv, err := NewServer(Config{Backend: BackendBuffered, Commander: LocalCommander{Shell: "/bin/bash"}})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, served := serveTCP(tb, srv, ctx, hardCtx)
	f := &shutdownFleet{srv: srv, cancel: cancel, served: served, conns: make([]net.Conn, n)}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range f.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			f.conns[i] = c
			if err := WriteInit(c, Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo ready-" + strconv.Itoa(i) + "; exec bash --norc --noprofile -i"}); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, 1024)
			_ = c.SetReadDeadline(time.Now().Add(longWait))
			if _, err := c.Read(buf); err != nil {
				errs <- err
				return
			}
			_ = c.SetReadDeadline(time.Time{})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return f
}

// shutdown cancels the server's context and returns how long Serve took to
// return and how many clients read a clean EOF (rather than a reset).
func (f *shutdownFleet) shutdown(tb testing.TB) (time.Duration, int) {
	tb.Helper()
	var clean sync.WaitGroup
	var mu sync.Mutex
	eofs := 0
	for _, c := range f.conns {
		clean.Add(1)
		go func() {
			defer clean.Done()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
			_, err := io.Copy(io.Discard, c)
			if err == nil { // io.Copy reports a clean EOF as nil
				mu.Lock()
				eofs++
				mu.Unlock()
			}
			_ = c.Close()
		}()
	}
	start := time.Now()
	f.cancel()
	if err := <-f.served; err != nil && !errors.Is(err, ErrServerClosed) {
		tb.Error(err)
	}
	took := time.Since(start)
	clean.Wait()
	return took, eofs
}

// BenchmarkShutdown measures how long a server with n buffered sessions,
// each with an attached client, takes to shut down, and the share of
// clients that got a clean EOF. Linear shutdown keeps ms-per-session flat
// as n grows. Run with:
//
//	go test -run '^$' -bench Shutdown -benchtime 1x .
func BenchmarkShutdown(b *testing.B) {
	for _, n := range []int{100, 500, 1000} {
		b.Run("sessions="+strconv.Itoa(n), func(b *testing.B) {
			var total time.Duration
			var eofs int
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				f := startShutdownFleet(b, n, context.Background())
				b.StartTimer()
				took, clean := f.shutdown(b)
				total += took
				eofs += clean
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "shutdown-s")
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N*n), "ms/session")
			b.ReportMetric(float64(eofs)/float64(b.N*n), "clean-eof-share")
		})
	}
}
