// Command bench measures this library beside a bare PTY, tmux, GNU screen
// and dtach, in one run on this machine, and prints a Markdown table in
// which every figure is also a ratio to the bare PTY measured in the same
// round: output throughput, reattach latency, keystroke echo latency, idle
// cost per session and CPU per GB relayed. It can also write the table to
// a file and draw an SVG chart of throughput and reattach latency.
//
//	go run ./examples/bench -md bench.md -svg bench.svg
//
// A contender that is not installed (or a backend this build lacks) is
// skipped with a line saying so. The library runs as an agent runs it, in
// a daemon process of its own (this binary, re-executed) on a loopback TCP
// listener, used through its public API; the bench's clients reach it from
// another process.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/xerrors"
)

// config is what the flags set.
type config struct {
	rounds           int
	warmup           bool
	bytes            int64
	reattachSessions int
	reattachBytes    int
	reattachSamples  int
	echoTrips        int
	idleSessions     int
	idleBytes        int
	contenders       []string
	phases           []string
	mdPath, svgPath  string
	traceDir         string // -trace: runtime traces and reattach samples
	timeout          time.Duration
	args             []string // the command line, for the report
}

func allKeys() []string {
	var keys []string
	for _, c := range contenders() {
		keys = append(keys, c.key)
	}
	return keys
}

func parseFlags(args []string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	cfg := config{args: args}
	var bytes, reattachBytes, idleBytes, contenders, phases string
	fs.IntVar(&cfg.rounds, "rounds", 3, "measured `rounds` (after the warm-up)")
	fs.BoolVar(&cfg.warmup, "warmup", true, "run one warm-up round first and discard it")
	fs.StringVar(&bytes, "bytes", "100MB", "output the throughput writer prints (`size`: 100MB, 1MB, 64KiB)")
	fs.IntVar(&cfg.reattachSessions, "reattach-sessions", 200, "live sessions during the reattach test")
	fs.StringVar(&reattachBytes, "reattach-bytes", "64KiB", "output each reattach session printed")
	fs.IntVar(&cfg.reattachSamples, "reattach-samples", 200, "reattaches timed per contender and round")
	fs.IntVar(&cfg.echoTrips, "echo-trips", 2000, "keystroke round trips per contender and round")
	fs.IntVar(&cfg.idleSessions, "idle-sessions", 1000, "sessions for the idle cost")
	fs.StringVar(&idleBytes, "idle-bytes", "4KiB", "output each idle session printed")
	fs.StringVar(&contenders, "contenders", strings.Join(allKeys(), ","), "comma-separated `list` of contenders")
	fs.StringVar(&phases, "phases", strings.Join(allPhases, ","), "comma-separated `list` of measurements")
	fs.StringVar(&cfg.mdPath, "md", "", "also write the Markdown table to this `file`")
	fs.StringVar(&cfg.svgPath, "svg", "", "write the SVG chart to this `file`")
	fs.StringVar(&cfg.traceDir, "trace", "", "write runtime traces of the bench and each library daemon, and every reattach sample's start and end, to this `directory`")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "longest single wait (one throughput run, one attach)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, xerrors.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.bytes, err = parseSize(bytes); err != nil {
		return cfg, xerrors.Errorf("-bytes: %w", err)
	}
	n, err := parseSize(reattachBytes)
	if err != nil {
		return cfg, xerrors.Errorf("-reattach-bytes: %w", err)
	}
	cfg.reattachBytes = int(n)
	if n, err = parseSize(idleBytes); err != nil {
		return cfg, xerrors.Errorf("-idle-bytes: %w", err)
	}
	cfg.idleBytes = int(n)
	if cfg.contenders, err = parseList(contenders, allKeys()); err != nil {
		return cfg, xerrors.Errorf("-contenders: %w", err)
	}
	if cfg.phases, err = parseList(phases, allPhases); err != nil {
		return cfg, xerrors.Errorf("-phases: %w", err)
	}
	switch {
	case cfg.rounds < 1:
		return cfg, xerrors.New("-rounds must be at least 1")
	case cfg.bytes < 1, cfg.reattachSessions < 1, cfg.reattachSamples < 1, cfg.echoTrips < 1, cfg.idleSessions < 1:
		return cfg, xerrors.New("sizes and counts must be positive")
	}
	return cfg, nil
}

// parseSize reads a byte count with an optional unit: kB/MB/GB (powers of
// 1000) or KiB/MiB/GiB (powers of 1024).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 {
		return 0, xerrors.Errorf("bad size %q", s)
	}
	return int64(v * float64(mult)), nil
}

func parseList(s string, known []string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		ok := false
		for _, k := range known {
			ok = ok || k == v
		}
		if !ok {
			return nil, xerrors.Errorf("unknown %q (known: %s)", v, strings.Join(known, ", "))
		}
		out = append(out, v)
	}
	return out, nil
}

func main() {
	runChild(os.Args)
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if xerrors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchMain(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// benchMain runs the bench and writes its table to stdout and the files
// the flags name.
func benchMain(ctx context.Context, cfg config, stdout, log io.Writer) error {
	res, err := run(ctx, cfg, log)
	if err != nil {
		return err
	}
	md := renderMarkdown(res)
	if _, err := io.WriteString(stdout, md); err != nil {
		return xerrors.Errorf("write table: %w", err)
	}
	if cfg.mdPath != "" {
		if err := os.WriteFile(cfg.mdPath, []byte(md), 0o644); err != nil {
			return xerrors.Errorf("write %s: %w", cfg.mdPath, err)
		}
	}
	if cfg.svgPath != "" {
		if err := os.WriteFile(cfg.svgPath, []byte(renderSVG(res)), 0o644); err != nil {
			return xerrors.Errorf("write %s: %w", cfg.svgPath, err)
		}
	}
	return nil
}
