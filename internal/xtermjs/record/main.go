// Command record makes the terminal recordings in
// internal/vt/testdata/recordings: it runs real programs on a PTY of a given
// size, types scripted keystrokes at them with pauses like a user, and saves
// every byte the programs wrote, exactly as read.
//
//	go run ./internal/xtermjs/record -out internal/vt/testdata/recordings
//	go run ./internal/xtermjs/record -out ... -only vim,less -sizes 80x24
//
// Each recording NAME at WxH gives NAME.WxH.raw (the bytes) and
// NAME.WxH.chunks (the size of each read, one a line, so tests can replay
// the PTY's own chunk boundaries). The programs run with a neutral
// environment: HOME and the working directory are fresh temporary
// directories, PS1 is "$ ", TERM is xterm-256color, and top and htop show
// only the recording's own processes.
//
// It is a development tool, not part of the library.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/xerrors"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-emit" {
		// Re-executed on the PTY as one of the sample programs.
		if err := emit(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	out := flag.String("out", "internal/vt/testdata/recordings", "directory to write the recordings to")
	only := flag.String("only", "", "comma-separated recording names (default all)")
	sizes := flag.String("sizes", "80x24,120x40", "comma-separated terminal sizes WxH")
	flag.Parse()
	if err := run(context.Background(), *out, *only, *sizes); err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
}

type size struct{ cols, rows int }

func (s size) String() string { return fmt.Sprintf("%dx%d", s.cols, s.rows) }

func parseSizes(s string) ([]size, error) {
	var out []size
	for _, f := range strings.Split(s, ",") {
		w, h, ok := strings.Cut(strings.TrimSpace(f), "x")
		cols, err1 := strconv.Atoi(w)
		rows, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || cols < 10 || rows < 5 {
			return nil, xerrors.Errorf("bad size %q", f)
		}
		out = append(out, size{cols, rows})
	}
	return out, nil
}

func run(ctx context.Context, out, only, sizeList string) error {
	sizes, err := parseSizes(sizeList)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	self, err := os.Executable()
	if err != nil {
		return xerrors.Errorf("find own executable: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return xerrors.Errorf("create %s: %w", out, err)
	}
	for _, sc := range scenarios(self) {
		if len(want) > 0 && !want[sc.name] {
			continue
		}
		for _, sz := range sizes {
			chunks, err := record(ctx, sc, sz)
			if err != nil {
				return xerrors.Errorf("record %s at %s: %w", sc.name, sz, err)
			}
			if err := save(out, sc.name, sz, chunks); err != nil {
				return err
			}
			n := 0
			for _, c := range chunks {
				n += len(c)
			}
			fmt.Printf("%s.%s: %d bytes in %d reads\n", sc.name, sz, n, len(chunks))
		}
	}
	return nil
}

func save(dir, name string, sz size, chunks [][]byte) error {
	base := filepath.Join(dir, fmt.Sprintf("%s.%s", name, sz))
	var raw []byte
	var sizes strings.Builder
	for _, c := range chunks {
		raw = append(raw, c...)
		fmt.Fprintf(&sizes, "%d\n", len(c))
	}
	if err := os.WriteFile(base+".raw", raw, 0o644); err != nil {
		return xerrors.Errorf("write recording: %w", err)
	}
	if err := os.WriteFile(base+".chunks", []byte(sizes.String()), 0o644); err != nil {
		return xerrors.Errorf("write chunk sizes: %w", err)
	}
	return nil
}

// step is one thing the scripted user does: type keys, then wait until the
// program has been quiet for quiet (at most max), or simply sleep.
type step struct {
	keys  string
	sleep time.Duration // fixed wait instead of a quiet one (refreshing programs)
	quiet time.Duration
}

// scenario is one recording: a setup of the working directory, the
// command, and the keystrokes.
type scenario struct {
	name  string
	setup func(dir string) error
	argv  []string
	steps []step
}

func keys(k string) step { return step{keys: k} }

func pause(d time.Duration) step { return step{sleep: d} }

// session is a program running on a PTY and what it wrote so far.
type session struct {
	mu       sync.Mutex
	chunks   [][]byte
	lastRead time.Time
}

func (s *session) add(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks = append(s.chunks, append([]byte(nil), b...))
	s.lastRead = time.Now()
}

func (s *session) idleFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Since(s.lastRead)
}

// waitQuiet waits until nothing was read for quiet, or max has passed.
func (s *session) waitQuiet(quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && s.idleFor() < quiet {
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *session) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chunks)
}

// waitOutput waits until more than n chunks were read, or max has passed:
// the program's answer to keys, before waiting for it to be quiet.
func (s *session) waitOutput(n int, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && s.count() <= n {
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *session) snapshot() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.chunks...)
}

func record(ctx context.Context, sc scenario, sz size) ([][]byte, error) {
	work, err := os.MkdirTemp("", "rec-work-")
	if err != nil {
		return nil, xerrors.Errorf("make work dir: %w", err)
	}
	defer os.RemoveAll(work)
	home, err := os.MkdirTemp("", "rec-home-")
	if err != nil {
		return nil, xerrors.Errorf("make home dir: %w", err)
	}
	defer os.RemoveAll(home)
	if sc.setup != nil {
		if err := sc.setup(work); err != nil {
			return nil, xerrors.Errorf("set up %s: %w", sc.name, err)
		}
	}
	cmd := exec.CommandContext(ctx, sc.argv[0], sc.argv[1:]...)
	cmd.Dir = work
	cmd.Env = []string{
		"HOME=" + home,
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"TERM=xterm-256color",
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"PS1=$ ",
		"SHELL=/bin/bash",
		"USER=user",
		"LOGNAME=user",
		"HISTFILE=/dev/null",
		"LESSHISTFILE=-",
		"GIT_PAGER=cat",
		"PAGER=cat",
	}
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: uint16(sz.rows), Cols: uint16(sz.cols)})
	if err != nil {
		return nil, xerrors.Errorf("start %v: %w", sc.argv, err)
	}
	s := &session{lastRead: time.Now()}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				s.add(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	s.waitQuiet(700*time.Millisecond, 10*time.Second) // let it start
	for _, st := range sc.steps {
		before := s.count()
		if st.keys != "" {
			if _, err := f.Write([]byte(st.keys)); err != nil {
				break // the program has exited
			}
		}
		if st.sleep > 0 {
			time.Sleep(st.sleep)
			continue
		}
		q := st.quiet
		if q == 0 {
			q = 400 * time.Millisecond
		}
		s.waitOutput(before, 3*time.Second)
		s.waitQuiet(q, 10*time.Second)
	}
	// The last output: either the program has exited and its PTY drained,
	// or it is still running and quiet.
	select {
	case <-exited:
		select {
		case <-readDone:
		case <-time.After(time.Second): // a background child holds the PTY
		}
	case <-time.After(300 * time.Millisecond):
		s.waitQuiet(500*time.Millisecond, 5*time.Second)
	}
	chunks := s.snapshot()
	// End whatever still runs in the program's session (an interactive
	// shell puts its jobs in process groups of their own), then the PTY.
	killSession(cmd.Process.Pid)
	<-exited
	_ = f.Close()
	<-readDone
	return chunks, nil
}

// killSession kills every process of the session that sid leads.
func killSession(sid int) {
	_ = syscall.Kill(sid, syscall.SIGKILL)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses:
		// state ppid pgrp session ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 3 && f[3] == strconv.Itoa(sid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
