package reconnectingpty_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
)

// BenchmarkUpgrade times Server.Upgrade in internal/upgraded, from the
// upgrade request to the new image serving a connection (its first output
// byte), with no session and with 1,000 idle vt sessions that each hold
// 1,000 lines of scrollback, 100 of them with a resuming client attached.
// It reports the phases the two images log, the state's size per session,
// and how long after the upgrade request the clients had resumed (their
// delta header received). UPGRADE_BENCH_CPUPROFILE=FILE has the new
// image write a CPU profile of its first 3 seconds to FILE.
//
//	go test -run '^$' -bench BenchmarkUpgrade -benchtime 5x .
func BenchmarkUpgrade(b *testing.B) {
	bin := buildUpgraded(b, b.TempDir(), "bench")
	for _, n := range []int{0, 1000} {
		b.Run("sessions="+strconv.Itoa(n), func(b *testing.B) {
			d := startDaemon(b, bin)
			ids := makeIdleVTSessions(b, d.rpty, n)
			probe := uuid.New()
			if n > 0 {
				probe = ids[0]
			}
			var serve, quiesce, write, exec, read, register, restore time.Duration
			var resumed, blackout []time.Duration
			var stopAccepting time.Duration
			var stateBytes float64
			b.ResetTimer()
			for range b.N {
				before := d.lineCount()
				var start time.Time
				upgrade := func() {
					start = time.Now()
					var env []string
					if p := os.Getenv("UPGRADE_BENCH_CPUPROFILE"); p != "" && n > 0 {
						// The new image profiles its first seconds.
						env = append(env, "UPGRADED_CPUPROFILE="+p)
					}
					if err := d.upgrade(bin, env...); err != "" {
						b.Fatalf("upgrade: %s", err)
					}
					// The listener was carried: this connect waits in
					// its backlog until the new image accepts and
					// serves it.
					firstByte(b, d.rpty, probe)
					serve += time.Since(start)
				}
				if n > 0 {
					b.StopTimer()
					fromStart, fromDrop := resumeLatencies(b, d.rpty, ids[:min(100, n)], func() {
						b.StartTimer()
						upgrade()
					})
					resumed = append(resumed, fromStart...)
					blackout = append(blackout, fromDrop...)
				} else {
					upgrade()
				}
				b.StopTimer()
				d.waitLine("READY ", before)
				up := d.logFields(before, "reconnecting pty upgrade: executing the new image")
				// (Logged once every session is rebuilt, which may be
				// after the new image serves.)
				rs := d.waitLogFields(before, "reconnecting pty sessions restored")
				b.Logf("old image: %v; new image: %v", up, rs)
				quiesce += parseDuration(b, up["quiesce"])
				stopAccepting += parseDuration(b, up["stop_accepting"])
				write += parseDuration(b, up["write"])
				stateBytes = up["state_bytes"].(float64)
				restore += parseDuration(b, rs["restore"])
				register += parseDuration(b, rs["register"])
				read += parseDuration(b, rs["read"])
				exec += parseDuration(b, rs["exec"])
				b.StartTimer()
			}
			b.StopTimer()
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(per(serve), "ms-to-serving")
			b.ReportMetric(per(stopAccepting), "ms-stop-accepting")
			b.ReportMetric(per(quiesce), "ms-quiesce")
			b.ReportMetric(per(write), "ms-write")
			b.ReportMetric(per(exec), "ms-exec")
			b.ReportMetric(per(read), "ms-read")
			b.ReportMetric(per(register), "ms-register")
			b.ReportMetric(per(restore), "ms-restore-background")
			if n > 0 {
				b.ReportMetric(stateBytes/float64(n), "state-B/session")
				slices.Sort(resumed)
				slices.Sort(blackout)
				ms := func(d []time.Duration, q float64) float64 {
					return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
				}
				b.ReportMetric(ms(resumed, 0.5), "ms-resumed-p50")
				b.ReportMetric(ms(resumed, 0.99), "ms-resumed-p99")
				b.ReportMetric(ms(blackout, 0.5), "ms-drop-to-resumed-p50")
				b.ReportMetric(ms(blackout, 0.99), "ms-drop-to-resumed-p99")
			}
		})
	}
}

// makeIdleVTSessions starts n vt sessions that print 1,100 lines (so that
// 1,000 are in the scrollback) and then wait for input.
func makeIdleVTSessions(b *testing.B, addr string, n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	work := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ids[i] = uuid.New()
				errs <- startIdle(addr, ids[i])
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

func startIdle(addr string, id uuid.UUID) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	init := reconnectingpty.Init{ID: id, Height: 24, Width: 80, BackendType: "vt", Command: "seq -f 'scrollback line %g' 1 1100; exec cat"}
	if err := reconnectingpty.WriteInit(c, init); err != nil {
		return err
	}
	var out []byte
	buf := make([]byte, 32<<10)
	for !bytes.Contains(out, []byte("scrollback line 1100\r\n")) {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return err
		}
	}
	return nil
}

// firstByte attaches to session id and waits for its first output byte,
// redialling while the server refuses (the clients reconnecting at the same
// moment may exceed MaxStartups for an instant).
func firstByte(b *testing.B, addr string, id uuid.UUID) {
	deadline := time.Now().Add(time.Minute)
	for {
		err := tryFirstByte(addr, id)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("first byte from the new image: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func tryFirstByte(addr string, id uuid.UUID) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if err := reconnectingpty.WriteInit(c, reconnectingpty.Init{ID: id, Height: 24, Width: 80, BackendType: "vt", Command: "exec cat"}); err != nil {
		return err
	}
	_, err = io.ReadFull(c, make([]byte, 1))
	return err
}

// logFields returns the fields of the first JSON line from index from on
// with msg.
func (d *daemon) logFields(from int, msg string) map[string]any {
	d.tb.Helper()
	for _, l := range d.logLines(from, d.lineCount()) {
		var e struct {
			Msg    string         `json:"msg"`
			Fields map[string]any `json:"fields"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg == msg {
			return e.Fields
		}
	}
	d.tb.Fatalf("no %q in the log", msg)
	return nil
}

// waitLogFields is logFields that waits for the line.
func (d *daemon) waitLogFields(from int, msg string) map[string]any {
	d.tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, l := range d.logLines(from, d.lineCount()) {
			var e struct {
				Msg    string         `json:"msg"`
				Fields map[string]any `json:"fields"`
			}
			if json.Unmarshal([]byte(l), &e) == nil && e.Msg == msg {
				return e.Fields
			}
		}
		if time.Now().After(deadline) {
			d.tb.Fatalf("no %q in the log in 2 minutes", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func parseDuration(tb testing.TB, v any) time.Duration {
	s, _ := v.(string)
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		tb.Fatalf("duration %v: %v", v, err)
	}
	return d
}
