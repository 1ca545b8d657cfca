package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
)

// libHost is this library's server, run inside the bench on a loopback
// TCP listener and used only through its public API, as an embedding
// application would.
type libHost struct {
	backend string
	tagEnv  string
	srv     *reconnectingpty.Server
	addr    string
	stop    context.CancelFunc
	served  chan error
	ids     map[int]uuid.UUID
	cmds    map[int]string
}

// unavailableError is a backend this build of the library does not know.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string {
	return "not available in this build (the server says: " + e.err.Error() + ")"
}

// taggedCommander runs commands like the library's LocalCommander, with
// the host's tag added to their environment.
type taggedCommander struct{ tag string }

func (t taggedCommander) Command(ctx context.Context, req reconnectingpty.CommandRequest) (*exec.Cmd, error) {
	cmd, err := reconnectingpty.LocalCommander{Shell: "/bin/sh", Dir: os.TempDir()}.Command(ctx, req)
	if err != nil {
		return nil, err
	}
	cmd.Env = append(os.Environ(), t.tag)
	return cmd, nil
}

func openLibrary(b *bench, backend string) (*libHost, error) {
	tag := b.newTag()
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Backend:   reconnectingpty.BackendType(backend),
		Commander: taggedCommander{tag: tag},
		// Idle sessions must outlive the measurement.
		Timeout: time.Hour,
	})
	if err != nil {
		if strings.Contains(err.Error(), "unknown backend") {
			return nil, &unavailableError{err: err}
		}
		return nil, xerrors.Errorf("create server: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, xerrors.Errorf("listen on loopback: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &libHost{
		backend: backend, tagEnv: tag, srv: srv, addr: l.Addr().String(), stop: stop,
		served: make(chan error, 1), ids: map[int]uuid.UUID{}, cmds: map[int]string{},
	}
	// One context for both: closing the host cuts connections at once.
	go func() { h.served <- srv.Serve(ctx, ctx, l) }()
	return h, nil
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
	for h.srv.ConnCount() > 0 {
		select {
		case <-ctx.Done():
			return xerrors.Errorf("wait for %d connections to close: %w", h.srv.ConnCount(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

func (h *libHost) close() error {
	h.stop()
	err := <-h.served
	if kerr := killTagged(h.tagEnv, 10*time.Second); kerr != nil {
		return xerrors.Errorf("after the server shut down: %w", kerr)
	}
	if err != nil {
		return xerrors.Errorf("serve: %w", err)
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
