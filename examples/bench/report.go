package main

import (
	"fmt"
	"math"
	"strings"
)

// renderMarkdown writes the run as Markdown: a header saying where and how
// the figures were measured, then one table per measurement.
func renderMarkdown(res *results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m, cfg := res.machine, res.cfg

	w("# reconnectingpty bench\n\n")
	w("- Machine: %d CPUs, %s; %s; %s.\n", m.cpus, orUnknown(m.cpuModel), orUnknown(m.kernel), m.goVersion)
	if len(m.tools) > 0 {
		w("- Peers: %s.\n", strings.Join(m.tools, "; "))
	}
	w("- Load average at start %s, at end %s. Other work on the machine moves every figure.\n", m.load, res.loadAfter)
	warm := "no warm-up round"
	if cfg.warmup {
		warm = "after a warm-up round (discarded)"
	}
	w("- Run %s, took %s: %d measured %s %s. In each round the contenders take turns, each round starting one further down the list.\n",
		res.started.Format("2006-01-02 15:04 UTC"), res.took.Round(1e9), cfg.rounds, plural(cfg.rounds, "round"), warm)
	w("- Figures are the median (min–max) over the rounds. Every ratio (× bare) is taken within one round, against the bare PTY measured in that round, and then summarised the same way.\n")
	w("- Command: `go run ./examples/bench %s`\n", strings.Join(cfg.args, " "))
	for _, s := range res.skipped {
		w("- Skipped %s\n", s)
	}

	if len(res.tp) > 0 && hasPhase(cfg, "throughput") {
		w("\n## Output throughput\n\n")
		w("A writer prints %s of %d-character lines in 8 KiB writes, like `yes`, then an end marker, into one session on an 80x24 terminal. "+
			"Time runs from the keystroke that starts it (typed once every client is attached) until the end marker is on the client's screen; "+
			"with several clients, the slowest one's. tmux and GNU screen redraw their screen rather than relay every byte, so their clients receive "+
			"far fewer bytes (last column): the rate is the writer's output over that time, what a person watching waits for. "+
			"The bare PTY is creack/pty read with 32 KiB reads. The library runs as a daemon process of its own, its clients in the bench over loopback TCP; "+
			"tmux, screen and dtach clients run on PTYs the bench reads with 32 KiB reads. A stalled client attaches and never reads again. "+
			"CPU is user+sys seconds of every process involved (the writer, the contender's processes, the bench with its reading clients) "+
			"per GB the writer printed; the writer's own share, the same work for every contender, is shown apart. "+
			"Relay CPU is the contender's own processes alone: the library's daemon; tmux's server and client; screen's daemon and client; "+
			"dtach's master and attach process (for the bare PTY, nothing relays). "+
			"/proc counts other processes' time in 10 ms ticks, so small runs are coarse.\n\n", humanBytes(cfg.bytes), lineLen)
		w("| contender | MB/s | × bare | CPU s/GB | CPU × bare | relay CPU s/GB | writer's CPU s/GB | client received, MB |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, r := range res.tp {
			w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.name, fmtSpread(r.mbps, 1), fmtSpread(r.ratio, 2),
				fmtSpread(r.cpuPerGB, 2), fmtSpread(r.cpuRatio, 2), fmtSpread(r.relayCPU, 2), fmtSpread(r.writerCPU, 2), fmtSpread(r.clientMB, 1))
		}
	}

	if len(res.reattach) > 0 && hasPhase(cfg, "reattach") {
		w("\n## Reattach latency\n\n")
		w("%d live sessions that each printed %s and a marker, then idle; %d reattaches per round, in turn over the sessions, each from "+
			"dialling (for tmux, screen and dtach: starting their client) until the marker is on the client's screen: for the library the end "+
			"of the replay or snapshot, for the others their first full repaint (dtach keeps no screen: it asks the program to repaint with Ctrl-L, "+
			"and the bench's program does). A bare PTY has no reattach, so there is no ratio.\n\n",
			cfg.reattachSessions, humanBytes(int64(cfg.reattachBytes)), cfg.reattachSamples)
		w("| contender | p50 ms | p99 ms |\n| --- | --- | --- |\n")
		for _, r := range res.reattach {
			if r.note != "" {
				w("| %s | — (%s) | — |\n", r.name, r.note)
				continue
			}
			w("| %s | %s | %s |\n", r.name, fmtSpread(r.p50, 3), fmtSpread(r.p99, 3))
		}
	}

	if len(res.echo) > 0 && hasPhase(cfg, "echo") {
		w("\n## Keystroke echo latency\n\n")
		w("`cat` on a raw terminal (`stty raw -echo`); %d keystrokes per round, one at a time (after %d untimed), each from typing it "+
			"(writing it to the PTY, or sending the protocol's input request) until its echo is on the client's screen.\n\n", cfg.echoTrips, echoWarmup)
		w("| contender | p50 µs | × bare | p99 µs | × bare | p99 − bare p99, µs |\n| --- | --- | --- | --- | --- | --- |\n")
		for _, r := range res.echo {
			w("| %s | %s | %s | %s | %s | %s |\n", r.name, fmtSpread(scale(r.p50, 1000), 0), fmtSpread(r.r50, 2),
				fmtSpread(scale(r.p99, 1000), 0), fmtSpread(r.r99, 2), fmtSpread(scale(r.d99, 1000), 0))
		}
	}

	if len(res.idle) > 0 && hasPhase(cfg, "idle") {
		w("\n## Idle cost per session\n\n")
		w("%d sessions that each printed %s, attached to once and left detached and idle. For the library, "+
			"the growth of its daemon's live heap (after GC) and goroutine count, divided by the sessions; for the bare PTY the same of the bench "+
			"holding the PTYs and processes. For every contender, the RSS and PSS (/proc/PID/smaps_rollup) of its own processes, divided by the "+
			"sessions (the library's one daemon and tmux's one server are shared by all). The session "+
			"programs, the same for every contender, are left out everywhere.\n\n", cfg.idleSessions, humanBytes(int64(cfg.idleBytes)))
		w("| contender | heap KiB | × bare | goroutines | processes | RSS KiB | PSS KiB |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		for _, r := range res.idle {
			heap, ratio, gor := fmtSpread(r.heapKiB, 1), fmtSpread(r.heapRatio, 1), fmtSpread(r.goroutines, 2)
			if !r.goHeap {
				heap, ratio, gor = "—", "—", "—"
			}
			w("| %s | %s | %s | %s | %s | %s | %s |\n", r.name, heap, ratio, gor, fmtSpread(r.procs, 0),
				fmtSpread(r.rssKiB, 0), fmtSpread(r.pssKiB, 0))
		}
	}

	if len(res.failures) > 0 {
		w("\n## Failed measurements\n\n")
		for _, f := range res.failures {
			w("- %s\n", f)
		}
	}
	return b.String()
}

func hasPhase(cfg config, p string) bool {
	for _, q := range cfg.phases {
		if q == p {
			return true
		}
	}
	return false
}

// fmtSpread prints the median and, with more than one round, the range.
func fmtSpread(vals []float64, digits int) string {
	s := spreadOf(vals)
	if s.n == 0 {
		return "—"
	}
	if s.n == 1 || fmtNum(s.min, digits) == fmtNum(s.max, digits) {
		return fmtNum(s.median, digits)
	}
	return fmtNum(s.median, digits) + " (" + fmtNum(s.min, digits) + "–" + fmtNum(s.max, digits) + ")"
}

func fmtNum(v float64, digits int) string {
	if math.Abs(v) < 0.5*math.Pow(10, -float64(digits)) {
		v = 0 // no "-0.0"
	}
	return fmt.Sprintf("%.*f", digits, v)
}

func scale(vals []float64, k float64) []float64 {
	out := make([]float64, len(vals))
	for i, v := range vals {
		out[i] = v * k
	}
	return out
}

func humanBytes(n int64) string {
	switch {
	case n >= 1e6 && n%1e5 == 0:
		return fmt.Sprintf("%g MB", float64(n)/1e6)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
