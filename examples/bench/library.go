package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
)

// libHost is this library's server, run as an agent runs it: in a
// process of its own (the bench's binary started as a daemon, see
// daemonMain) on a loopback TCP listener, used only through its public API
// and the protocol. The bench's clients are another process, so reattach
// is timed across processes and the daemon's CPU and memory are its own.
type libHost struct {
	backend string
	tagEnv  string
	addr    string
	cmd     *exec.Cmd
	daemon  *daemonProc
	ids     map[int]uuid.UUID
	cmds    map[int]string
}

// unavailableError is a backend this build of the library does not know.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string {
	return "not available in this build (the server says: " + e.err.Error() + ")"
}

func openLibrary(b *bench, backend string) (*libHost, error) {
	tag := b.newTag()
	cmd := exec.Command(b.self, childArg, "daemon", backend)
	// The tag reaches the sessions' programs through the daemon's
	// environment, which LocalCommander passes on.
	cmd.Env = append(append(os.Environ(), tag), b.trace.daemonEnv(backend)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, xerrors.Errorf("daemon stdin: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, xerrors.Errorf("daemon stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, xerrors.Errorf("start the daemon: %w", err)
	}
	h := &libHost{backend: backend, tagEnv: tag, cmd: cmd,
		daemon: &daemonProc{in: in, out: bufio.NewReader(out)},
		ids:    map[int]uuid.UUID{}, cmds: map[int]string{}}
	line, err := h.daemon.out.ReadString('\n')
	if addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr "); err == nil && ok {
		h.addr = addr
		return h, nil
	}
	_ = in.Close()
	werr := cmd.Wait()
	msg := strings.TrimSpace(stderr.String())
	if strings.Contains(msg, "unknown backend") {
		return nil, &unavailableError{err: xerrors.New(msg)}
	}
	return nil, xerrors.Errorf("the daemon did not start (%v, %v): %s", err, werr, msg)
}

func (h *libHost) tag() string { return h.tagEnv }

// start records the command; the session is created by its first attach,
// as with any client of the protocol.
func (h *libHost) start(_ context.Context, i int, command string) error {
	h.ids[i] = uuid.New()
	h.cmds[i] = command
	return nil
}

func (h *libHost) attach(ctx context.Context, i int) (client, error) {
	id, ok := h.ids[i]
	if !ok {
		return nil, xerrors.Errorf("session %d was not started", i)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, xerrors.Errorf("dial server: %w", err)
	}
	init := reconnectingpty.Init{ID: id, Height: rows, Width: cols, Command: h.cmds[i], BackendType: h.backend}
	if err := reconnectingpty.WriteInit(nc, init); err != nil {
		_ = nc.Close()
		return nil, xerrors.Errorf("write init: %w", err)
	}
	return &libClient{TCPConn: nc.(*net.TCPConn)}, nil
}

// settle waits until the server has let go of every closed connection.
func (h *libHost) settle(ctx context.Context) error {
	for {
		f, err := h.daemon.ask("conns")
		if err != nil {
			return err
		}
		if len(f) == 1 && f[0] == "0" {
			return nil
		}
		select {
		case <-ctx.Done():
			return xerrors.Errorf("wait for %v connections to close: %w", f, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// heap is the daemon's live heap after GC and its goroutines.
func (h *libHost) heap() (uint64, int, error) {
	f, err := h.daemon.ask("heap")
	if err != nil {
		return 0, 0, err
	}
	if len(f) != 2 {
		return 0, 0, xerrors.Errorf("the daemon answered heap with %v", f)
	}
	heap, err1 := strconv.ParseUint(f[0], 10, 64)
	g, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0, xerrors.Errorf("the daemon answered heap with %v", f)
	}
	return heap, g, nil
}

// close lets the daemon shut down (its sessions end with it), then makes
// sure that nothing of the host is left.
func (h *libHost) close() error {
	_ = h.daemon.in.Close()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		err = xerrors.Errorf("the daemon did not shut down within 10 s: %v", <-done)
	}
	if kerr := killTagged(h.tagEnv, 10*time.Second); kerr != nil {
		return xerrors.Errorf("after the daemon shut down: %w", kerr)
	}
	if err != nil {
		return xerrors.Errorf("daemon: %w", err)
	}
	return nil
}

// libClient is a protocol client: raw output in, JSON requests out.
type libClient struct{ *net.TCPConn }

func (c *libClient) send(p []byte) error {
	return reconnectingpty.WriteRequest(c.TCPConn, reconnectingpty.Request{Data: string(p)})
}

// Close half-closes first, which the server logs as a graceful detach.
func (c *libClient) Close() error {
	_ = c.CloseWrite()
	return c.TCPConn.Close()
}

// probeLibrary checks that the server runs the backend: NewServer refuses
// a default it does not know, and a server refuses an init naming one by
// resetting the connection before any output.
func probeLibrary(ctx context.Context, b *bench, backend string) error {
	if backend == "screen" {
		if _, err := exec.LookPath("screen"); err != nil {
			return xerrors.New("GNU screen is not installed, and the library would fall back to buffered (apt-get install screen)")
		}
	}
	h, err := openLibrary(b, backend)
	if err != nil {
		return err
	}
	defer h.close()
	const probe = "RPTYBENCH-PROBE"
	if err := h.start(ctx, 0, "printf '%s\\n' "+probe+"; exec cat"); err != nil {
		return err
	}
	c, err := h.attach(ctx, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := readUntil(ctx, c, []byte(probe), time.Now().Add(b.cfg.timeout), make([]byte, readBufSize)); err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return xerrors.Errorf("not available in this build: the server rejected BackendType %q", backend)
		}
		return xerrors.Errorf("probe session: %w", err)
	}
	return nil
}
