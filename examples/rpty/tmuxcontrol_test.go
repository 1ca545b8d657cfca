package main

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// tmuxControl is a control-mode client (tmux -C) of a pane's server: one
// process for many commands, so that polling the screen costs a message
// on tmux's socket instead of starting a tmux process, which on a loaded
// machine takes longer than the latencies measured.
type tmuxControl struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func (p *tmuxPane) control() *tmuxControl {
	p.t.Helper()
	cmd := exec.Command("tmux", "-S", p.sock, "-f", "/dev/null", "-C", "attach")
	in, err := cmd.StdinPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("tmux -C: %v", err)
	}
	c := &tmuxControl{t: p.t, cmd: cmd, in: in, out: bufio.NewReader(out)}
	p.t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
	})
	// No output notifications, the pane's size kept; then skip the
	// attach's own reply up to the answer of a marker.
	c.send("refresh-client -f no-output")
	c.send("refresh-client -C 80x24")
	c.send("display-message -p control-ready")
	for {
		r, err := c.reply()
		if err != nil {
			p.t.Fatalf("tmux -C: %v", err)
		}
		if r == "control-ready" {
			return c
		}
	}
}

func (c *tmuxControl) send(command string) {
	_, _ = io.WriteString(c.in, command+"\n") // a failure shows in reply
}

// reply reads the next command's reply (a %begin ... %end block).
func (c *tmuxControl) reply() (string, error) {
	var lines []string
	in := false
	for {
		line, err := c.out.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "%begin "):
			// "%begin time number flags": flags 1 for a command of this
			// client's, 0 for tmux's own (the attach's, which may come
			// late), which are not replies.
			f := strings.Fields(line)
			in, lines = len(f) == 4 && f[3] == "1", nil
		case in && (strings.HasPrefix(line, "%end ") || strings.HasPrefix(line, "%error ")):
			return strings.Join(lines, "\n"), nil
		case in:
			lines = append(lines, line)
		}
	}
}

// do runs a command and returns its reply; from the test's goroutine.
func (c *tmuxControl) do(command string) string {
	c.t.Helper()
	r, err := c.try(command)
	if err != nil {
		c.t.Fatalf("tmux -C %s: %v", command, err)
	}
	return r
}

// try runs a command and returns its reply or why it has none.
func (c *tmuxControl) try(command string) (string, error) {
	c.send(command)
	return c.reply()
}
