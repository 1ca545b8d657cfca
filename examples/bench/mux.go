package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/xerrors"
)

// muxTool describes one of the session keepers people use instead of the
// library: how to start a detached session and how to attach a client.
type muxTool struct {
	key, label, bin, pkg string
	// versionArgs print the version on the first line of output.
	versionArgs []string
	// setup prepares the host's directory (configuration, socket dir).
	setup func(dir string) error
	// env is added to every command of the host.
	env func(dir string) []string
	// startArgs create session name detached, running command via sh.
	startArgs func(dir, name, command string) []string
	// ready reports whether the new session can be attached to.
	ready func(dir, name string) bool
	// attachArgs attach a client to session name.
	attachArgs func(dir, name string) []string
}

// muxTools are tmux, GNU screen and dtach, each with the settings closest
// to how people run them: their defaults, minus anything that draws over
// the program (tmux's status line, screen's startup message).
func muxTools() []*muxTool {
	return []*muxTool{
		{
			key: "tmux", label: "tmux", bin: "tmux", pkg: "tmux", versionArgs: []string{"-V"},
			setup: func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "tmux.conf"), []byte("set -g status off\n"), 0o600)
			},
			env: func(string) []string { return nil },
			startArgs: func(dir, name, command string) []string {
				return []string{"-S", filepath.Join(dir, "tmux.sock"), "-f", filepath.Join(dir, "tmux.conf"),
					"new-session", "-d", "-s", name, "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), command}
			},
			// new-session returns once the session exists.
			ready: func(string, string) bool { return true },
			attachArgs: func(dir, name string) []string {
				return []string{"-S", filepath.Join(dir, "tmux.sock"), "attach-session", "-t", name}
			},
		},
		{
			key: "screen", label: "GNU screen", bin: "screen", pkg: "screen", versionArgs: []string{"-v"},
			setup: func(dir string) error {
				if err := os.Mkdir(filepath.Join(dir, "sock"), 0o700); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(dir, "screenrc"), []byte("startup_message off\n"), 0o600)
			},
			env: func(dir string) []string { return []string{"SCREENDIR=" + filepath.Join(dir, "sock")} },
			startArgs: func(dir, name, command string) []string {
				return []string{"-c", filepath.Join(dir, "screenrc"), "-dmS", name, "/bin/sh", "-c", command}
			},
			// The daemon's socket is "PID.name" in SCREENDIR.
			ready: func(dir, name string) bool {
				m, _ := filepath.Glob(filepath.Join(dir, "sock", "*."+name))
				return len(m) > 0
			},
			attachArgs: func(dir, name string) []string {
				return []string{"-c", filepath.Join(dir, "screenrc"), "-r", name}
			},
		},
		{
			key: "dtach", label: "dtach", bin: "dtach", pkg: "dtach", versionArgs: []string{"--help"},
			setup: func(string) error { return nil },
			env:   func(string) []string { return nil },
			// The default redraw method, Ctrl-L, is kept: on attach the
			// program is asked to repaint.
			startArgs: func(dir, name, command string) []string {
				return []string{"-n", filepath.Join(dir, name+".sock"), "/bin/sh", "-c", command}
			},
			ready: func(dir, name string) bool {
				_, err := os.Stat(filepath.Join(dir, name+".sock"))
				return err == nil
			},
			// -E: no detach key, so every byte typed reaches the program.
			attachArgs: func(dir, name string) []string {
				return []string{"-a", filepath.Join(dir, name+".sock"), "-E"}
			},
		},
	}
}

// version returns the tool's version line, or "" when it cannot say.
func (t *muxTool) version() string {
	out, _ := exec.Command(t.bin, t.versionArgs...).CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(first)
}

// muxHost is one private namespace of a tool: its own directory, sockets
// and configuration, so the bench never meets a user's sessions.
type muxHost struct {
	tool   *muxTool
	dir    string
	tagEnv string
	env    []string
}

func openMux(b *bench, t *muxTool) (*muxHost, error) {
	dir, err := os.MkdirTemp("", "rptybench-"+t.key+"-")
	if err != nil {
		return nil, xerrors.Errorf("create %s directory: %w", t.key, err)
	}
	if err := t.setup(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, xerrors.Errorf("set up %s: %w", t.key, err)
	}
	tag := b.newTag()
	env := append(os.Environ(), tag, "TERM=xterm-256color")
	return &muxHost{tool: t, dir: dir, tagEnv: tag, env: append(env, t.env(dir)...)}, nil
}

func (h *muxHost) tag() string { return h.tagEnv }

func sessionName(i int) string { return "s" + strconv.Itoa(i) }

func (h *muxHost) start(ctx context.Context, i int, command string) error {
	name := sessionName(i)
	cmd := exec.CommandContext(ctx, h.tool.bin, h.tool.startArgs(h.dir, name, command)...)
	cmd.Env = h.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return xerrors.Errorf("start %s session: %w: %s", h.tool.key, err, out)
	}
	for !h.tool.ready(h.dir, name) {
		select {
		case <-ctx.Done():
			return xerrors.Errorf("wait for %s session %s: %w", h.tool.key, name, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

func (h *muxHost) attach(_ context.Context, i int) (client, error) {
	cmd := exec.Command(h.tool.bin, h.tool.attachArgs(h.dir, sessionName(i))...)
	cmd.Env = h.env
	f, err := startOnPTY(cmd)
	if err != nil {
		return nil, err
	}
	return &ptyClient{f: f, proc: cmd}, nil
}

// settle has nothing to wait for: closing a client waited for its process.
func (h *muxHost) settle(context.Context) error { return nil }

func (h *muxHost) close() error {
	err := killTagged(h.tagEnv, 10*time.Second)
	if rerr := os.RemoveAll(h.dir); rerr != nil && err == nil {
		err = xerrors.Errorf("remove %s directory: %w", h.tool.key, rerr)
	}
	return err
}
