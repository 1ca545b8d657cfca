package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// Every session and every client terminal is 80x24.
const rows, cols = 24, 80

// host is one running instance of a contender: a server or a daemon
// namespace holding numbered sessions.
type host interface {
	// start creates session i running `/bin/sh -c command` at 80x24.
	// For the library the session is created by its first attach.
	start(ctx context.Context, i int, command string) error
	// attach connects a new client to session i at 80x24.
	attach(ctx context.Context, i int) (client, error)
	// settle waits until every closed client is gone from the host.
	settle(ctx context.Context) error
	// tag is the environment entry every process of the host carries.
	tag() string
	// close ends every session and the host, leaving no process behind.
	close() error
}

// contender is one thing being measured.
type contender struct {
	key   string // its name in -contenders
	label string // its name in the table
	// goHeap contenders are Go programs whose idle cost is also told in
	// live heap and goroutines: the bare PTY held by the bench itself,
	// and the library's daemon. Every contender's is told in RSS and PSS.
	goHeap bool
	// noReattach explains why reattach is not measured, if it is not.
	noReattach string
	// check says why the contender cannot run here, or nil.
	check func(ctx context.Context, b *bench) error
	open  func(b *bench) (host, error)
}

// contenders lists everything the bench knows, in the table's order.
func contenders() []*contender {
	cs := []*contender{
		{
			key: "bare", label: "bare PTY", goHeap: true,
			noReattach: "a bare PTY has no reattach",
			check:      func(context.Context, *bench) error { return nil },
			open:       func(b *bench) (host, error) { return newBareHost(b), nil },
		},
	}
	for _, backend := range []string{"buffered", "vt", "screen"} {
		key := backend
		if backend == "screen" {
			key = "rpty-screen"
		}
		cs = append(cs, &contender{
			key: key, label: "rpty " + backend, goHeap: true,
			check: func(ctx context.Context, b *bench) error { return probeLibrary(ctx, b, backend) },
			open:  func(b *bench) (host, error) { return openLibrary(b, backend) },
		})
	}
	for _, t := range muxTools() {
		cs = append(cs, &contender{
			key: t.key, label: t.label,
			check: func(context.Context, *bench) error {
				if _, err := exec.LookPath(t.bin); err != nil {
					return xerrors.Errorf("%s is not installed (apt-get install %s)", t.bin, t.pkg)
				}
				return nil
			},
			open: func(b *bench) (host, error) { return openMux(b, t) },
		})
	}
	return cs
}

// ptyClient is a client whose output is read from a PTY master: the bare
// PTY's own, or the terminal of a tmux, screen or dtach client process.
type ptyClient struct {
	f    *os.File
	proc *exec.Cmd // the client process; nil for the bare PTY
}

func (c *ptyClient) Read(p []byte) (int, error)        { return c.f.Read(p) }
func (c *ptyClient) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }
func (c *ptyClient) send(p []byte) error               { _, err := c.f.Write(p); return err }

// Close hangs up the client's terminal and waits for its process to go.
func (c *ptyClient) Close() error {
	if c.proc == nil {
		return nil // the bare PTY's master belongs to its session
	}
	_ = c.f.Close()
	done := make(chan error, 1)
	go func() { done <- c.proc.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.proc.Process.Kill()
		<-done
	}
	return nil
}

// startOnPTY starts cmd on a new 80x24 PTY and returns its master, which
// supports read deadlines.
func startOnPTY(cmd *exec.Cmd) (*os.File, error) {
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		return nil, xerrors.Errorf("start %s on a pty: %w", strings.Join(cmd.Args, " "), err)
	}
	return pollable(f)
}

// pollable returns a non-blocking copy of a PTY master that Go's poller
// serves, so that reads honour deadlines (creack/pty opens it blocking),
// and closes the original.
func pollable(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	_ = f.Close()
	if err != nil {
		return nil, xerrors.Errorf("duplicate pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, xerrors.Errorf("make pty master non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}
