package reconnectingpty

import (
	"bytes"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkCPUBudget accounts for the machine's CPU while output is
// relayed, to tell what the library costs from what any relay on the same
// machine costs. In each iteration it measures, for benchBytes of output:
//
//   - bare-cpu-s: busy CPU seconds, all processes and the kernel's workers,
//     while the bare PTY is read (the producer and the terminal's own work);
//   - fanout-cpu-s: the same while this process sends that much from memory
//     to each client over loopback TCP and the clients read it (the work of
//     delivering it, whoever relays it);
//   - server-cpu-s: the same while the server relays the producer to the
//     clients, and library-cpu-s, what remains of it after the other two;
//   - x-bare, as in BenchmarkThroughput, and zero-cost-x-bare: the ratio a
//     relay costing no CPU of its own would reach if the machine were as
//     busy as during the bare run (bare-cpu-s / (bare-cpu-s + fanout-cpu-s)).
//
// Run with:
//
//	go test -run '^$' -bench CPUBudget -benchtime 3x .
func BenchmarkCPUBudget(b *testing.B) {
	for _, backend := range []BackendType{BackendBuffered, BackendVT} {
		for _, readers := range []int{1, 10} {
			name := string(backend) + "/one_client"
			if readers > 1 {
				name = string(backend) + "/ten_clients"
			}
			b.Run(name, func(b *testing.B) {
				var bareCPU, fanCPU, srvCPU, bare, srv float64
				for i := 0; i < b.N; i++ {
					c0 := busyCPU(b)
					bare += bareRate(b)
					c1 := busyCPU(b)
					loopbackFanOut(b, readers)
					c2 := busyCPU(b)
					srv += serverRate(b, backend, readers, 0)
					c3 := busyCPU(b)
					bareCPU += (c1 - c0).Seconds()
					fanCPU += (c2 - c1).Seconds()
					srvCPU += (c3 - c2).Seconds()
				}
				n := float64(b.N)
				b.ReportMetric(bareCPU/n, "bare-cpu-s")
				b.ReportMetric(fanCPU/n, "fanout-cpu-s")
				b.ReportMetric(srvCPU/n, "server-cpu-s")
				b.ReportMetric((srvCPU-bareCPU-fanCPU)/n, "library-cpu-s")
				b.ReportMetric(srv/bare, "x-bare")
				b.ReportMetric(bareCPU/(bareCPU+fanCPU), "zero-cost-x-bare")
			})
		}
	}
}

// busyCPU is the machine's busy CPU time so far (all but idle and iowait),
// from /proc/stat, in its 10 ms ticks.
func busyCPU(b *testing.B) time.Duration {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line) // "cpu" user nice system idle iowait irq softirq steal ...
	var ticks int64
	for i, v := range fields[1:] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("parse /proc/stat: %v", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// loopbackFanOut sends benchBytes from memory, in the PTY reader's 32 KiB
// chunks, to each of n clients over loopback TCP, a chunk to each in turn,
// and waits until every client has read it all.
func loopbackFanOut(b *testing.B, n int) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	senders := make([]net.Conn, n)
	for i := range senders {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if senders[i], err = ln.Accept(); err != nil {
			b.Fatal(err)
		}
		defer senders[i].Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := io.Copy(io.Discard, c); err != nil || got < benchBytes {
				b.Errorf("client %d read %d bytes (%v), want %d", i, got, err, benchBytes)
			}
		}()
	}
	chunk := bytes.Repeat([]byte("reconnecting pty throughput benchmark line\r\n"), (32<<10)/44)
	for sent := 0; sent < benchBytes; sent += len(chunk) {
		for _, s := range senders {
			if _, err := s.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, s := range senders {
		_ = s.(*net.TCPConn).CloseWrite()
	}
	wg.Wait()
}

// BenchmarkDirectWrites measures what the PTY reader's direct writes to
// clients that keep up save (see ptyAttachment.claim): in each iteration
// the buffered backend relays the producer with every chunk queued for the
// connections' writers and then with direct writes, in turn, and the
// medians of the per-iteration ratios (direct / queued) of the slowest
// client's rate and of the machine's busy CPU are reported. Run with:
//
//	go test -run '^$' -bench DirectWrites -benchtime 12x .
func BenchmarkDirectWrites(b *testing.B) {
	for _, readers := range []int{1, 10} {
		name := "one_client"
		if readers > 1 {
			name = "ten_clients"
		}
		b.Run(name, func(b *testing.B) {
			var rates, cpus []float64
			for i := 0; i < b.N; i++ {
				c0 := busyCPU(b)
				queued := serverRateWith(b, BackendBuffered, readers, 0, true)
				c1 := busyCPU(b)
				direct := serverRateWith(b, BackendBuffered, readers, 0, false)
				c2 := busyCPU(b)
				rates = append(rates, direct/queued)
				cpus = append(cpus, (c2-c1).Seconds()/(c1-c0).Seconds())
			}
			b.ReportMetric(median(rates), "rate-direct/queued")
			b.ReportMetric(median(cpus), "cpu-direct/queued")
		})
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
