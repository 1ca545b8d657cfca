package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
)

// daemonMain is the library's server in a process of its own, as an agent
// runs it: the bench's clients reach it over loopback TCP from another
// process, and /proc tells the daemon's own CPU and memory apart from the
// clients'. It prints "addr HOST:PORT" once it listens, then answers the
// bench's lines on stdin:
//
//	conns -> "conns N": connections the server still serves
//	heap  -> "heap BYTES GOROUTINES": live heap after GC, and goroutines
//	trace -> "trace": the runtime trace and CPU profile that -trace asks
//	         for have started (they cover what is measured, not set-up)
//
// and shuts down when stdin ends.
func daemonMain(args []string) error {
	if len(args) != 1 {
		return xerrors.New("usage: daemon BACKEND")
	}
	stopTrace := func() {}
	defer func() { stopTrace() }()
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Backend:   reconnectingpty.BackendType(args[0]),
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/sh", Dir: os.TempDir()},
		// Idle sessions must outlive the measurement.
		Timeout: time.Hour,
	})
	if err != nil {
		return xerrors.Errorf("create server: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return xerrors.Errorf("listen on loopback: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	// One context for both: when the bench lets go, connections are cut
	// at once.
	go func() { served <- srv.Serve(ctx, ctx, l) }()
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "addr %s\n", l.Addr())
	if err := out.Flush(); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "conns":
			fmt.Fprintf(out, "conns %d\n", srv.ConnCount())
		case "trace":
			stopTrace()
			stopTrace = func() {}
			started, err := traceDaemon()
			if err != nil {
				return err
			}
			stopTrace = started
			fmt.Fprintf(out, "trace\n")
		case "heap":
			waitGoroutinesSettle(ctx)
			heap, g := liveHeap()
			fmt.Fprintf(out, "heap %d %d\n", heap, g)
		default:
			fmt.Fprintf(out, "error unknown request %q\n", in.Text())
		}
		if err := out.Flush(); err != nil {
			break
		}
	}
	stop()
	return <-served
}

// daemonProc is the bench's side of a daemon process.
type daemonProc struct {
	in  io.WriteCloser
	out *bufio.Reader
}

// ask sends one request line and returns the answer's fields after its
// first word, which must be the request's.
func (d *daemonProc) ask(req string) ([]string, error) {
	if _, err := fmt.Fprintln(d.in, req); err != nil {
		return nil, xerrors.Errorf("ask the daemon %s: %w", req, err)
	}
	line, err := d.out.ReadString('\n')
	if err != nil {
		return nil, xerrors.Errorf("read the daemon's answer to %s: %w", req, err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != req {
		return nil, xerrors.Errorf("the daemon answered %s with %q", req, line)
	}
	return f[1:], nil
}
