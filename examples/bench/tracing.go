package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// daemonTraceEnv names the file a library daemon writes its runtime trace
// to (see -trace), and daemonProfileEnv the file for its CPU profile; the
// bench sets them in the daemon's environment.
const (
	daemonTraceEnv   = "RPTYBENCH_DAEMON_TRACE"
	daemonProfileEnv = "RPTYBENCH_DAEMON_CPUPROFILE"
)

// tracer is what -trace DIR writes: the bench's own runtime trace, one per
// library daemon, and every reattach sample's start and end on the
// monotonic clock that runtime traces stamp their events with, so that a
// slow sample can be found in both processes' traces.
type tracer struct {
	dir     string
	samples *os.File
	bench   *os.File
	daemons int
}

func startTracer(dir string) (*tracer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, xerrors.Errorf("-trace: %w", err)
	}
	t := &tracer{dir: dir}
	var err error
	if t.samples, err = os.Create(filepath.Join(dir, "reattach-samples.tsv")); err != nil {
		return nil, xerrors.Errorf("-trace: %w", err)
	}
	fmt.Fprintf(t.samples, "contender\tstart_mono_ns\tend_mono_ns\tms\n")
	if t.bench, err = os.Create(filepath.Join(dir, "bench.trace")); err != nil {
		_ = t.samples.Close()
		return nil, xerrors.Errorf("-trace: %w", err)
	}
	if err := trace.Start(t.bench); err != nil {
		_ = t.samples.Close()
		_ = t.bench.Close()
		return nil, xerrors.Errorf("-trace: start the bench's trace: %w", err)
	}
	return t, nil
}

func (t *tracer) stop() error {
	if t == nil {
		return nil
	}
	trace.Stop()
	if err := errors.Join(t.bench.Close(), t.samples.Close()); err != nil {
		return xerrors.Errorf("-trace: %w", err)
	}
	return nil
}

// daemonEnv is the environment entry that has the next daemon trace itself.
func (t *tracer) daemonEnv(backend string) []string {
	if t == nil {
		return nil
	}
	t.daemons++
	name := filepath.Join(t.dir, fmt.Sprintf("daemon-%02d-%s", t.daemons, backend))
	return []string{daemonTraceEnv + "=" + name + ".trace", daemonProfileEnv + "=" + name + ".cpu"}
}

// sample records one reattach, timed from start to end.
func (t *tracer) sample(contender string, start, end int64) {
	if t == nil {
		return
	}
	fmt.Fprintf(t.samples, "%s\t%d\t%d\t%.3f\n", contender, start, end, float64(end-start)/1e6)
}

// monoNow is the monotonic clock as runtime traces stamp events.
func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// traceDaemon starts the daemon's runtime trace and CPU profile if the
// bench asked for them; the returned function stops them.
func traceDaemon() (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, f := range stops {
			f()
		}
	}
	start := func(env, what string, begin func(io.Writer) error, end func()) error {
		path := os.Getenv(env)
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return xerrors.Errorf("create daemon %s: %w", what, err)
		}
		if err := begin(f); err != nil {
			_ = f.Close()
			return xerrors.Errorf("start daemon %s: %w", what, err)
		}
		stops = append(stops, func() { end(); _ = f.Close() })
		return nil
	}
	if err := start(daemonTraceEnv, "trace", trace.Start, trace.Stop); err != nil {
		return nil, err
	}
	if err := start(daemonProfileEnv, "CPU profile", pprof.StartCPUProfile, pprof.StopCPUProfile); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}
