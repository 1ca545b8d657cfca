package vt

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// benchSize is how much output each parse benchmark iteration writes.
const benchSize = 1 << 20

func repeatTo(unit string, size int) []byte {
	return bytes.Repeat([]byte(unit), size/len(unit)+1)[:size/len(unit)*len(unit)]
}

func plainLines() []byte {
	return repeatTo(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:79]+"\r\n", benchSize)
}

func yesLines() []byte { return repeatTo("y\r\n", benchSize) }

// sgrDense is coloured output in the style of ls --color or a syntax
// highlighter: a colour change every few characters.
func sgrDense() []byte {
	var sb strings.Builder
	words := []string{"func", "main", "return", "if", "err", "nil", "for", "range", "x"}
	for i := 0; sb.Len() < 8192; i++ {
		col := 0
		for col < 70 {
			w := words[(i+col)%len(words)]
			switch col % 3 {
			case 0:
				fmt.Fprintf(&sb, "\x1b[1;%dm%s\x1b[0m ", 31+col%7, w)
			case 1:
				fmt.Fprintf(&sb, "\x1b[38;5;%dm%s\x1b[m ", 16+(i*7+col)%216, w)
			default:
				fmt.Fprintf(&sb, "\x1b[38;2;%d;%d;%dm%s\x1b[39m ", col*3, i%256, 200, w)
			}
			col += len(w) + 1
		}
		sb.WriteString("\r\n")
	}
	return repeatTo(sb.String(), benchSize)
}

func cjkLines() []byte {
	return repeatTo(strings.Repeat("漢字かな交じり文、中文字符。", 3)[:3*39]+"\r\n", benchSize)
}

func benchParse(b *testing.B, data []byte) {
	term := New(24, 80, Options{Scrollback: 1000})
	term.Write(data) // fill the scrollback: steady state
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		term.Write(data)
	}
	b.StopTimer()
	reportCPURate(b, cpu, int64(len(data))*int64(b.N))
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPURate reports bytes per CPU second since start: on a loaded
// machine the wall-clock MB/s says more about the other processes.
func reportCPURate(b *testing.B, start time.Duration, n int64) {
	if d := cpuTime() - start; d > 0 {
		b.ReportMetric(float64(n)/d.Seconds()/1e6, "cpu-MB/s")
	}
}

func BenchmarkParsePlain(b *testing.B) { benchParse(b, plainLines()) }
func BenchmarkParseYes(b *testing.B)   { benchParse(b, yesLines()) }
func BenchmarkParseSGR(b *testing.B)   { benchParse(b, sgrDense()) }
func BenchmarkParseCJK(b *testing.B)   { benchParse(b, cjkLines()) }

// fullTerminal is rows x cols with a full 1,000-line scrollback of
// coloured text.
func fullTerminal(rows, cols int) *Terminal {
	term := New(rows, cols, Options{Scrollback: 1000})
	for i := 0; i < 1000+rows; i++ {
		fmt.Fprintf(term, "\x1b[32m%5d\x1b[m %s\r\n", i, strings.Repeat("text ", cols/5)[:cols-7])
	}
	return term
}

func benchSnapshot(b *testing.B, term *Terminal) {
	buf := term.AppendSnapshot(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	cpu := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = term.AppendSnapshot(buf[:0])
	}
	b.StopTimer()
	if d := cpuTime() - cpu; d > 0 {
		b.ReportMetric(float64(d.Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

func BenchmarkSnapshot80x24(b *testing.B)  { benchSnapshot(b, fullTerminal(24, 80)) }
func BenchmarkSnapshot200x60(b *testing.B) { benchSnapshot(b, fullTerminal(60, 200)) }

// BenchmarkSnapshotCompacted80x24 is the snapshot a reattach to an idle vt
// session draws (BenchmarkVTReattach's, the bench command's): 1,100 plain
// lines printed, the scrollback full and compacted as the vt backend
// leaves it once the output pauses.
func BenchmarkSnapshotCompacted80x24(b *testing.B) {
	term := New(24, 80, Options{Scrollback: 1000})
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := range 1100 {
		fmt.Fprintf(term, "%05d %s\r\n", i, alnum[1+i%7:55+i%7])
	}
	term.Compact()
	benchSnapshot(b, term)
}

// heapOf reports the heap retained per terminal that build makes.
func heapOf(b *testing.B, build func() *Terminal) {
	const n = 20
	terms := make([]*Terminal, n)
	var before, after runtime.MemStats
	for i := 0; i < b.N; i++ {
		runtime.GC()
		runtime.ReadMemStats(&before)
		for k := range terms {
			terms[k] = build()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/term")
		clear(terms)
	}
}

func BenchmarkMemoryIdle80x24(b *testing.B) {
	heapOf(b, func() *Terminal { return New(24, 80, Options{Scrollback: 1000}) })
}

// BenchmarkMemoryFullScrollback80x24 is a terminal with a full scrollback
// once the output has paused and it was compacted until it holds no cells
// beyond the screen's (as the vt backend does);
// BenchmarkMemoryFullScrollbackRaw80x24 is the same terminal before that,
// its scrolled lines still as cells.
func BenchmarkMemoryFullScrollback80x24(b *testing.B) {
	data := plainLines()[:82*(1000+24)]
	heapOf(b, func() *Terminal {
		t := New(24, 80, Options{Scrollback: 1000})
		t.Write(data)
		for t.HeldLines() > 0 {
			t.Compact()
		}
		return t
	})
}

func BenchmarkMemoryFullScrollbackRaw80x24(b *testing.B) {
	data := plainLines()[:82*(1000+24)]
	heapOf(b, func() *Terminal {
		t := New(24, 80, Options{Scrollback: 1000})
		t.Write(data)
		return t
	})
}

// ptyLines starts a writer of plain 80-column lines on a PTY.
func ptyLines(b *testing.B) io.Reader {
	cmd := exec.Command("yes", strings.Repeat("x", 79))
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		b.Skipf("no PTY: %v", err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = f.Close()
	})
	return f
}

// BenchmarkPTYRead is the bare PTY rate of the same machine: the rate the
// parse benchmarks are compared with.
func BenchmarkPTYRead(b *testing.B) { benchPTY(b, nil) }

// BenchmarkPTYReadParse reads the same PTY and parses what it reads.
func BenchmarkPTYReadParse(b *testing.B) {
	term := New(24, 80, Options{Scrollback: 1000})
	term.Write(plainLines()) // a full scrollback: steady state
	benchPTY(b, term)
}

func benchPTY(b *testing.B, term *Terminal) {
	r := ptyLines(b)
	buf := make([]byte, 32<<10)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	defer func() { reportCPURate(b, cpu, int64(b.N)*benchSize) }()
	for i := 0; i < b.N; i++ {
		for got := 0; got < benchSize; {
			n, err := r.Read(buf)
			if err != nil {
				b.Fatalf("read PTY: %v", err)
			}
			if term != nil {
				term.Write(buf[:n])
			}
			got += n
		}
	}
}

// benchLines is the throughput benchmark's stream: yes with a 45-byte line.
func benchLines() []byte {
	return repeatTo("reconnecting pty throughput benchmark line\r\n", benchSize)
}

func BenchmarkParseBenchLines(b *testing.B) { benchParse(b, benchLines()) }

// benchStream is what examples/bench's writer prints, as the PTY hands it
// on: 71 characters of lowercase letters and digits, then CR LF (the
// PTY's onlcr), 73 bytes a line.
func benchStream() []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var ln []byte
	for len(ln) < 71 {
		ln = append(ln, alphabet[len(ln)%len(alphabet)])
	}
	return repeatTo(string(ln)+"\r\n", benchSize)
}

func BenchmarkParseBenchStream(b *testing.B) { benchParse(b, benchStream()) }

// BenchmarkParseRelayed parses the throughput benchmark's stream as the vt
// backend does while relaying it: in 4 KiB reads, compacting the
// scrollback every 2 MB (50 ms of output at 40 MB/s).
func BenchmarkParseRelayed(b *testing.B) {
	data := benchLines()
	term := New(24, 80, Options{Scrollback: 1000})
	term.Write(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for off := 0; off < len(data); off += 4096 {
			term.Write(data[off:min(off+4096, len(data))])
		}
		if i%2 == 1 {
			term.Compact()
		}
	}
}
