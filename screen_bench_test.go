package reconnectingpty

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkScreenReattach compares the screen backend with the buffered and
// vt ones in the same run: how long a reattach takes, from dialling to the first
// output that shows earlier output again (the replay, or screen's repaint),
// and what one idle session with one client attached costs in memory, as
// the RSS and PSS summed over every process of the session (for screen:
// daemon, client, wrapper and shell; for buffered and vt: the shell, plus
// the replay buffer or terminal inside the server, reported apart, see
// BenchmarkIdleVTSession). Run with:
//
//	go test -run '^$' -bench ScreenReattach -benchtime 50x .
func BenchmarkScreenReattach(b *testing.B) {
	requireScreen(b)
	for _, backend := range []BackendType{BackendScreen, BackendBuffered, BackendVT} {
		b.Run(string(backend), func(b *testing.B) {
			benchReattach(b, backend)
		})
	}
}

func benchReattach(b *testing.B, backend BackendType) {
	marker := randomMarker()
	srv, err := NewServer(Config{Backend: backend, Commander: markedCommander{marker: marker}})
	if err != nil {
		b.Fatal(err)
	}
	addr, stop := serveLoopback(b, srv)
	defer stop()

	id := uuid.New()
	init := Init{ID: id, Height: 24, Width: 80, Command: "bash --norc --noprofile", BackendType: string(backend)}
	// The quotes keep the typed command from matching: only its output does.
	const want = "reattach-marker-42"
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(longWait))
		if err := WriteInit(c, init); err != nil {
			b.Fatal(err)
		}
		return c
	}
	readUntil := func(c net.Conn, s string) {
		var out []byte
		buf := make([]byte, 32<<10)
		for !bytes.Contains(out, []byte(s)) {
			n, err := c.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				b.Fatalf("read: %v; output %q", err, out)
			}
		}
	}
	waitDetached := func() {
		for srv.ConnCount() > 0 {
			time.Sleep(time.Millisecond)
		}
	}

	first := dial()
	if err := WriteRequest(first, Request{Data: `echo reattach-""marker-$((6*7))` + "\r"}); err != nil {
		b.Fatal(err)
	}
	readUntil(first, want)

	// Memory of the session with this one client attached and idle.
	pids := markedProcesses(marker)
	var rss, pss int
	for _, pid := range pids {
		r, p := procKiB(b, pid, "status", "VmRSS:"), procKiB(b, pid, "smaps_rollup", "Pss:")
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if testing.Verbose() {
			b.Logf("%s pid %d %s: rss %d KiB, pss %d KiB", backend, pid, bytes.TrimSpace(comm), r, p)
		}
		rss += r
		pss += p
	}
	_ = first.Close()
	waitDetached()

	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		c := dial()
		readUntil(c, want)
		total += time.Since(start)
		b.StopTimer()
		_ = c.Close()
		waitDetached()
		b.StartTimer()
	}
	b.StopTimer()
	// Reported after the loop: ResetTimer drops metrics reported before it.
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/reattach")
	b.ReportMetric(float64(len(pids)), "procs/session")
	b.ReportMetric(float64(rss), "rss-KiB/session")
	b.ReportMetric(float64(pss), "pss-KiB/session")
	if backend == BackendBuffered {
		b.ReportMetric(float64(srv.cfg.BufferSize>>10), "replay-buffer-KiB/session")
	}
}

// procKiB reads a "Name:   123 kB" line from /proc/PID/file.
func procKiB(b *testing.B, pid int, file, name string) int {
	b.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
	if err != nil {
		// The process is gone; it costs nothing.
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				b.Fatalf("parse %s in %s: %v", name, file, err)
			}
			return kb
		}
	}
	return 0
}
