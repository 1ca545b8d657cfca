package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"golang.org/x/xerrors"
)

// bench is one run of the command.
type bench struct {
	cfg   config
	runID string
	tags  int
	self  string // this binary: the session programs run it
	log   io.Writer
	trace *tracer // nil without -trace
}

func (b *bench) newTag() string {
	b.tags++
	return fmt.Sprintf("%s=%s-%d", tagEnv, b.runID, b.tags)
}

// deadline bounds any single wait of the bench.
func (b *bench) deadline() time.Time { return time.Now().Add(b.cfg.timeout) }

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

// results are every figure of a run, per measured round, so that each
// ratio is computed from the bare PTY's figure of the same round.
type results struct {
	runID     string // in the tag of every process the run started
	machine   machine
	cfg       config
	started   time.Time
	took      time.Duration
	skipped   []string // one line per contender that could not run
	failures  []string // one line per measurement that failed
	tp        []*tpRow
	reattach  []*latRow
	echo      []*latRow
	idle      []*idleRow
	loadAfter string
}

type tpRow struct {
	name, key string
	bare      bool
	mbps      []float64 // writer's megabytes per second, per round
	cpuPerGB  []float64 // CPU seconds per GB the writer printed
	writerCPU []float64 // the writer's own share of cpuPerGB
	relayCPU  []float64 // the contender's own processes' CPU seconds per GB
	clientMB  []float64 // megabytes the (slowest) client received
	ratio     []float64 // mbps over the bare PTY's of the same round
	cpuRatio  []float64
}

type latRow struct {
	name, key string
	bare      bool
	note      string    // why a contender has no figure
	p50, p99  []float64 // milliseconds, per round
	r50, r99  []float64 // over the bare PTY's of the same round
	d99       []float64 // p99 minus the bare PTY's p99 of the same round
}

type idleRow struct {
	name, key  string
	bare       bool
	goHeap     bool
	heapKiB    []float64
	goroutines []float64
	rssKiB     []float64
	pssKiB     []float64
	procs      []float64
	heapRatio  []float64
}

// phases in the order each round runs them.
var allPhases = []string{"throughput", "reattach", "echo", "idle"}

// run measures every selected contender that can run, for one discarded
// warm-up round and cfg.rounds measured rounds. Within a round the
// contenders take turns, each round starting one further down the list,
// so that no contender is always first or always follows the same one.
func run(ctx context.Context, cfg config, log io.Writer) (_ *results, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, xerrors.Errorf("find own executable: %w", err)
	}
	b := &bench{cfg: cfg, runID: newRunID(), self: self, log: log}
	if cfg.traceDir != "" {
		if b.trace, err = startTracer(cfg.traceDir); err != nil {
			return nil, err
		}
		defer func() {
			if terr := b.trace.stop(); terr != nil && err == nil {
				err = terr
			}
		}()
	}
	res := &results{runID: b.runID, machine: describeMachine(), cfg: cfg, started: time.Now().UTC()}
	var cs []*contender
	for _, c := range contenders() {
		if !slices.Contains(cfg.contenders, c.key) {
			continue
		}
		if err := c.check(ctx, b); err != nil {
			res.skipped = append(res.skipped, fmt.Sprintf("%s: %v", c.key, err))
			b.logf("skip %s", res.skipped[len(res.skipped)-1])
			continue
		}
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		return nil, xerrors.New("no contender can run")
	}
	res.build(cs, cfg)

	first := 0
	if cfg.warmup {
		first = -1
	}
	for round := first; round < cfg.rounds; round++ {
		if round < 0 {
			b.logf("warm-up round (discarded)")
		} else {
			b.logf("round %d of %d", round+1, cfg.rounds)
		}
		for _, phase := range allPhases {
			if !slices.Contains(cfg.phases, phase) {
				continue
			}
			if err := b.runPhase(ctx, res, phase, round, cs); err != nil {
				return nil, err
			}
		}
	}
	res.derive()
	res.took = time.Since(res.started)
	res.loadAfter = loadAverage()
	return res, nil
}

// rotate returns n indices starting at round, wrapping.
func rotate(n, round int) []int {
	out := make([]int, n)
	for k := range out {
		out[k] = ((k+round)%n + n) % n
	}
	return out
}

// runPhase runs one phase of one round; round < 0 is the warm-up, whose
// figures are dropped. A failed measurement leaves its figure empty and is
// reported; only a cancelled context stops the run.
func (b *bench) runPhase(ctx context.Context, res *results, phase string, round int, cs []*contender) error {
	fail := func(what string, err error) {
		msg := fmt.Sprintf("round %d, %s, %s: %v", round+1, phase, what, err)
		if round < 0 {
			msg = fmt.Sprintf("warm-up, %s, %s: %v", phase, what, err)
		}
		res.failures = append(res.failures, msg)
		b.logf("FAILED %s", msg)
	}
	keep := round >= 0
	switch phase {
	case "throughput":
		cases := tpCases(cs)
		for _, k := range rotate(len(cases), round) {
			tc, row := cases[k], res.tp[k]
			r, err := b.throughput(ctx, tc)
			if err != nil {
				fail(row.name, err)
			} else {
				mbps := float64(b.cfg.bytes) / 1e6 / r.secs
				b.logf("throughput %s: %.1f MB/s, %.2f CPU s/GB, relay %.2f CPU s/GB", row.name, mbps,
					r.cpu/(float64(b.cfg.bytes)/1e9), r.relayCPU/(float64(b.cfg.bytes)/1e9))
				if keep {
					row.mbps[round] = mbps
					row.cpuPerGB[round] = r.cpu / (float64(b.cfg.bytes) / 1e9)
					row.writerCPU[round] = r.writerCPU / (float64(b.cfg.bytes) / 1e9)
					row.relayCPU[round] = r.relayCPU / (float64(b.cfg.bytes) / 1e9)
					row.clientMB[round] = float64(r.clientBytes) / 1e6
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	case "reattach", "echo":
		rows := res.reattach
		if phase == "echo" {
			rows = res.echo
		}
		for _, k := range rotate(len(cs), round) {
			c, row := cs[k], rows[k]
			if row.note != "" {
				continue
			}
			measure := b.reattach
			if phase == "echo" {
				measure = b.echo
			}
			lat, err := measure(ctx, c)
			if err != nil {
				fail(row.name, err)
			} else {
				p50, p99 := ms(percentile(lat, 50)), ms(percentile(lat, 99))
				b.logf("%s %s: p50 %.3f ms, p99 %.3f ms (%d samples)", phase, row.name, p50, p99, len(lat))
				if keep {
					row.p50[round], row.p99[round] = p50, p99
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	case "idle":
		for _, k := range rotate(len(cs), round) {
			c, row := cs[k], res.idle[k]
			r, err := b.idle(ctx, c)
			if err != nil {
				fail(row.name, err)
			} else {
				b.logf("idle %s: heap %.1f KiB, %.2f goroutines, RSS %.0f KiB, PSS %.0f KiB per session",
					row.name, r.heapBytes/1024, r.goroutines, r.rssKiB, r.pssKiB)
				if keep {
					row.heapKiB[round], row.goroutines[round] = r.heapBytes/1024, r.goroutines
					row.rssKiB[round], row.pssKiB[round] = r.rssKiB, r.pssKiB
					row.procs[round] = float64(r.procs)
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// build lays out the rows, every figure empty (NaN) until measured.
func (res *results) build(cs []*contender, cfg config) {
	n := cfg.rounds
	for _, tc := range tpCases(cs) {
		res.tp = append(res.tp, &tpRow{name: tc.name(), key: tc.c.key, bare: tc.c.key == "bare",
			mbps: nanRounds(n), cpuPerGB: nanRounds(n), writerCPU: nanRounds(n), relayCPU: nanRounds(n), clientMB: nanRounds(n)})
	}
	for _, c := range cs {
		res.reattach = append(res.reattach, &latRow{name: c.label, key: c.key, bare: c.key == "bare",
			note: c.noReattach, p50: nanRounds(n), p99: nanRounds(n)})
		res.echo = append(res.echo, &latRow{name: c.label, key: c.key, bare: c.key == "bare",
			p50: nanRounds(n), p99: nanRounds(n)})
		res.idle = append(res.idle, &idleRow{name: c.label, key: c.key, bare: c.key == "bare", goHeap: c.goHeap,
			heapKiB: nanRounds(n), goroutines: nanRounds(n), rssKiB: nanRounds(n), pssKiB: nanRounds(n), procs: nanRounds(n)})
	}
}

// derive computes every ratio, round by round, from the figures of the
// same round: a ratio never mixes rounds.
func (res *results) derive() {
	n := res.cfg.rounds
	bareTP, bareEcho, bareIdle := tpBare(res.tp), latBare(res.echo), idleBare(res.idle)
	for _, r := range res.tp {
		r.ratio, r.cpuRatio = nanRounds(n), nanRounds(n)
		if bareTP != nil {
			r.ratio, r.cpuRatio = ratios(r.mbps, bareTP.mbps), ratios(r.cpuPerGB, bareTP.cpuPerGB)
		}
	}
	for _, r := range res.echo {
		r.r50, r.r99, r.d99 = nanRounds(n), nanRounds(n), nanRounds(n)
		if bareEcho != nil {
			r.r50, r.r99 = ratios(r.p50, bareEcho.p50), ratios(r.p99, bareEcho.p99)
			for i := range r.d99 {
				r.d99[i] = r.p99[i] - bareEcho.p99[i]
			}
		}
	}
	for _, r := range res.reattach {
		// A bare PTY has no reattach to divide by.
		r.r50, r.r99, r.d99 = nanRounds(n), nanRounds(n), nanRounds(n)
	}
	for _, r := range res.idle {
		r.heapRatio = nanRounds(n)
		if bareIdle != nil {
			r.heapRatio = ratios(r.heapKiB, bareIdle.heapKiB)
		}
	}
}

func tpBare(rows []*tpRow) *tpRow {
	for _, r := range rows {
		if r.bare {
			return r
		}
	}
	return nil
}

func latBare(rows []*latRow) *latRow {
	for _, r := range rows {
		if r.bare {
			return r
		}
	}
	return nil
}

func idleBare(rows []*idleRow) *idleRow {
	for _, r := range rows {
		if r.bare {
			return r
		}
	}
	return nil
}

// finite reports whether v is a number.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
