package main

import (
	"context"
	"os"
	"os/exec"

	"golang.org/x/xerrors"
)

// bareHost runs each session's program on a PTY of its own, read directly
// by the bench: the baseline every figure is divided by.
type bareHost struct {
	tagEnv   string
	sessions map[int]*bareSession
}

type bareSession struct {
	cmd      *exec.Cmd
	master   *ptyClient
	attached bool
}

func newBareHost(b *bench) *bareHost {
	return &bareHost{tagEnv: b.newTag(), sessions: map[int]*bareSession{}}
}

func (h *bareHost) tag() string { return h.tagEnv }

func (h *bareHost) start(_ context.Context, i int, command string) error {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), h.tagEnv, "TERM=xterm-256color")
	f, err := startOnPTY(cmd)
	if err != nil {
		return err
	}
	h.sessions[i] = &bareSession{cmd: cmd, master: &ptyClient{f: f}}
	return nil
}

// attach hands out the master itself, once: a bare PTY has one reader.
func (h *bareHost) attach(_ context.Context, i int) (client, error) {
	s, ok := h.sessions[i]
	switch {
	case !ok:
		return nil, xerrors.Errorf("bare PTY %d was not started", i)
	case s.attached:
		return nil, xerrors.New("a bare PTY has one reader and no reattach")
	}
	s.attached = true
	return s.master, nil
}

func (h *bareHost) settle(context.Context) error { return nil }

func (h *bareHost) close() error {
	for _, s := range h.sessions {
		_ = s.master.f.Close()
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	h.sessions = nil
	return nil
}
