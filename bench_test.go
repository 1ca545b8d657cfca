package reconnectingpty

import (
	"net"
	"os/exec"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/uuid"
)

// benchBytes is how much output each throughput run produces.
const benchBytes = 100_000_000

const benchProducer = "yes 'reconnecting pty throughput benchmark line' | head -c 100000000"

// bareRate is the baseline: creack/pty reading the producer to EOF with
// 32 KiB reads and nothing else, in bytes per second.
func bareRate(b *testing.B) float64 {
	b.Helper()
	cmd := exec.Command("sh", "-c", benchProducer)
	start := time.Now()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		m, err := f.Read(buf)
		n += int64(m)
		if err != nil {
			break
		}
	}
	elapsed := time.Since(start)
	_ = cmd.Wait()
	if n < benchBytes {
		b.Fatalf("bare pty read %d bytes, want at least %d", n, benchBytes)
	}
	return float64(n) / elapsed.Seconds()
}

// BenchmarkThroughput measures output relayed through the server over
// loopback TCP as a ratio of the bare PTY rate measured in the same
// iteration (x-bare), for the buffered and vt backends (vt also feeds
// every byte to its terminal emulator). Run with:
//
//	go test -run '^$' -bench Throughput -benchtime 1x -count 3 .
func BenchmarkThroughput(b *testing.B) {
	for _, backend := range []BackendType{BackendBuffered, BackendVT} {
		for _, bc := range []struct {
			name    string
			readers int
			stalled int
		}{
			{"one_client", 1, 0},
			{"ten_clients", 10, 0},
			{"ten_clients_one_stalled", 10, 1},
		} {
			b.Run(string(backend)+"/"+bc.name, func(b *testing.B) {
				var bareSum, slowSum float64
				for i := 0; i < b.N; i++ {
					bare := bareRate(b)
					slowest := serverRate(b, backend, bc.readers, bc.stalled)
					bareSum += bare
					slowSum += slowest
				}
				b.ReportMetric(bareSum/float64(b.N)/1e6, "bare-MB/s")
				b.ReportMetric(slowSum/float64(b.N)/1e6, "slowest-MB/s")
				b.ReportMetric(slowSum/bareSum, "x-bare")
			})
		}
	}
}

// serverRate runs the producer in one session with the given number of
// reading clients and clients that never read, and returns the slowest
// reader's rate from the moment output starts to its EOF.
func serverRate(b *testing.B, backend BackendType, readers, stalled int) float64 {
	b.Helper()
	return serverRateWith(b, backend, readers, stalled, false)
}

// serverRateWith is serverRate, with the readers' direct writes to
// clients turned off if queueAll is set.
func serverRateWith(b *testing.B, backend BackendType, readers, stalled int, queueAll bool) float64 {
	b.Helper()
	return serverRateOn(b, backend, readers, stalled, func(srv *Server) { srv.queueAllOutput = queueAll })
}

// serverRateOn is serverRate on a server that setup adjusts first.
func serverRateOn(b *testing.B, backend BackendType, readers, stalled int, setup func(*Server)) float64 {
	b.Helper()
	rate, _, _ := serverRun(b, backend, readers, stalled, setup)
	return rate
}

// serverRun is serverRateOn that also returns the CPU seconds this
// process (the server and its reading clients; not the producer) spent
// per GB of output while it flowed, and the goroutines it started per MB.
func serverRun(b *testing.B, backend BackendType, readers, stalled int, setup func(*Server)) (rate, cpuPerGB, goPerMB float64) {
	b.Helper()
	srv, err := NewServer(Config{Backend: backend, Commander: LocalCommander{Shell: "/bin/sh"}})
	if err != nil {
		b.Fatal(err)
	}
	setup(srv)
	addr, stop := serveLoopback(b, srv)
	defer stop()

	id := uuid.New()
	// The producer waits for a line of input so every client is attached
	// before the first byte.
	init := Init{ID: id, Height: 24, Width: 80, Command: "read -r go; " + benchProducer}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteInit(c, init); err != nil {
			b.Fatal(err)
		}
		return c
	}
	conns := make([]net.Conn, readers)
	for i := range conns {
		conns[i] = dial()
		defer conns[i].Close()
	}
	for i := 0; i < stalled; i++ {
		c := dial()
		defer c.Close()
	}
	// Every connection is attached once it is counted and the session
	// replays nothing yet; wait for the server to have them all.
	for srv.ConnCount() < int64(readers+stalled) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)

	var wg sync.WaitGroup
	rates := make([]float64, readers)
	cpu, started := processCPU(b), goroutinesCreated()
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			var n int64
			var readErr error
			for readErr == nil {
				var m int
				m, readErr = c.Read(buf)
				n += int64(m)
			}
			if n < benchBytes {
				b.Errorf("reader %d got %d bytes, want at least %d (%v)", i, n, benchBytes, readErr)
			}
			rates[i] = float64(n) / time.Since(start).Seconds()
		}()
	}
	if err := WriteRequest(conns[0], Request{Data: "\r"}); err != nil {
		b.Fatal(err)
	}
	wg.Wait()
	cpu, started = processCPU(b)-cpu, goroutinesCreated()-started
	slowest := rates[0]
	for _, r := range rates {
		slowest = min(slowest, r)
	}
	return slowest, cpu.Seconds() / (benchBytes / 1e9), float64(started) / (benchBytes / 1e6)
}

// goroutinesCreated counts the goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRelayVTBuffered compares the vt backend's relay with
// buffered's in the same iteration: a bare PTY read, then one client
// reading through buffered, through vt, and through vt with the reader
// parsing each chunk as it reads it rather than in batches while the PTY
// has more ready (vtParseBatch), in an order that rotates every
// iteration. It reports the
// medians over the iterations of each rate against the bare PTY and of
// each vt against buffered, of the CPU this process (server and client)
// spent per GB and each vt's against buffered's, and of the goroutines it
// started per MB. Run with:
//
//	go test -run '^$' -bench RelayVTBuffered -benchtime 6x .
func BenchmarkRelayVTBuffered(b *testing.B) {
	runs := []struct {
		name    string
		backend BackendType
		setup   func(*Server)
	}{
		{"buffered", BackendBuffered, func(*Server) {}},
		{"vt", BackendVT, func(*Server) {}},
		{"vt-each-chunk", BackendVT, func(s *Server) { s.vtParseEachChunk = true }},
	}
	xBare := make([][]float64, len(runs))
	xBuf := make([][]float64, len(runs))
	cpu := make([][]float64, len(runs))
	cpuXBuf := make([][]float64, len(runs))
	goroutines := make([][]float64, len(runs))
	for i := 0; i < b.N; i++ {
		bare := bareRate(b)
		rates := make([]float64, len(runs))
		cpus := make([]float64, len(runs))
		gos := make([]float64, len(runs))
		for k := range runs {
			j := (i + k) % len(runs)
			rates[j], cpus[j], gos[j] = serverRun(b, runs[j].backend, 1, 0, runs[j].setup)
		}
		for k := range runs {
			xBare[k] = append(xBare[k], rates[k]/bare)
			xBuf[k] = append(xBuf[k], rates[k]/rates[0])
			cpu[k] = append(cpu[k], cpus[k])
			cpuXBuf[k] = append(cpuXBuf[k], cpus[k]/cpus[0])
			goroutines[k] = append(goroutines[k], gos[k])
		}
	}
	for k, r := range runs {
		b.ReportMetric(median(xBare[k]), r.name+"-x-bare")
		b.ReportMetric(median(cpu[k]), r.name+"-cpu-s/GB")
		b.ReportMetric(median(goroutines[k]), r.name+"-goroutines/MB")
		if k > 0 {
			b.ReportMetric(median(xBuf[k]), r.name+"-x-buffered")
			b.ReportMetric(median(cpuXBuf[k]), r.name+"-cpu-x-buffered")
		}
	}
}
