package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// rptyd is a daemon built from ../rptyd, run with a JSON log on stderr.
type rptyd struct {
	t   *testing.T
	cmd *exec.Cmd

	mu    sync.Mutex
	lines []map[string]any
}

func startRptyd(t *testing.T, args ...string) *rptyd {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rptyd")
	if out, err := exec.Command("go", "build", "-o", bin, "../rptyd").CombinedOutput(); err != nil {
		t.Fatalf("go build rptyd: %v\n%s", err, out)
	}
	d := &rptyd{t: t, cmd: exec.Command(bin, append([]string{"--log-format", "json"}, args...)...)}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				d.mu.Lock()
				d.lines = append(d.lines, m)
				d.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-logDone
		_ = d.cmd.Wait()
	})
	return d
}

// logged returns the fields of the daemon's log lines with msg whose
// fields include want.
func (d *rptyd) logged(msg string, want map[string]any) []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	var found []map[string]any
	for _, line := range d.lines {
		f, _ := line["fields"].(map[string]any)
		if line["msg"] != msg {
			continue
		}
		match := true
		for k, v := range want {
			if f[k] != v {
				match = false
			}
		}
		if match {
			found = append(found, f)
		}
	}
	return found
}

// waitLogged waits until the daemon has logged n lines with msg and want.
func (d *rptyd) waitLogged(msg string, want map[string]any, n int) []map[string]any {
	d.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		found := d.logged(msg, want)
		if len(found) >= n {
			return found
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%d %q log lines with %v, want %d", len(found), msg, want, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tmuxPane is one detached tmux session on a socket of the test's own.
type tmuxPane struct {
	t    *testing.T
	sock string
	// crash, where set, is the file rpty copies a crash report to
	// (RPTY_CRASH_OUTPUT).
	crash string
}

func startTmux(t *testing.T, command ...string) *tmuxPane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: apt-get install tmux")
	}
	p := &tmuxPane{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	args := append([]string{"new-session", "-d", "-x", "80", "-y", "24"}, command...)
	p.run(append(args, ";", "set-option", "status", "off")...)
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-S", p.sock, "kill-server").Run()
		checkNoProcessWith(t, p.sock)
	})
	return p
}

func (p *tmuxPane) run(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen is what the pane shows, row by row, and where its cursor is.
type screen struct {
	rows   []string
	cursor string
}

func (p *tmuxPane) screen() screen {
	p.t.Helper()
	rows := strings.Split(strings.TrimSuffix(p.run("capture-pane", "-p"), "\n"), "\n")
	return screen{rows: rows, cursor: strings.TrimSpace(p.run("display-message", "-p", "#{cursor_x},#{cursor_y}"))}
}

// history is the pane's scrollback and screen, joined wrapped lines.
func (p *tmuxPane) history() []string {
	p.t.Helper()
	return strings.Split(p.run("capture-pane", "-p", "-J", "-S", "-"), "\n")
}

func (p *tmuxPane) typeIn(s string) {
	p.t.Helper()
	p.run("send-keys", "-l", s)
}

func (p *tmuxPane) waitFor(what string, cond func(screen) bool) screen {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s := p.screen()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not within %s; pane (cursor %s):\n\t|%s", what, waitTimeout, s.cursor, strings.Join(s.rows, "\n\t|"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkNoProcessWith fails the test if a process whose command line
// names arg is still running after a grace period, and kills it.
func checkNoProcessWith(t *testing.T, arg string) {
	t.Helper()
	find := func() []int {
		var pids []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && slices.Contains(strings.Split(string(cmdline), "\x00"), arg) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := find()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left behind: %v", pids)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onlySessionConnections asks rptyd's HTTP API (GET /sessions) how many
// connections its one session has; it fails the test unless there is
// exactly one session.
func onlySessionConnections(t *testing.T, httpAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/sessions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var infos []reconnectingpty.SessionInfo
	if err := json.NewDecoder(resp.Body).Decode(&infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("%d sessions, want 1", len(infos))
	}
	return infos[0].Connections
}

// TestCLIInTmuxAcrossDaemonUpgrade attaches the CLI, in tmux, to a real
// rptyd on the vt backend and upgrades the daemon in place twice under
// it. After a SIGUSR2 upgrade the pane shows the screen it showed before,
// once the status line has flashed, with nothing doubled; keys
// typed while a POST /upgrade execs the daemon reach the shell once each,
// in order; the shell is the same process throughout, and ends when the
// upgraded daemon is killed.
func TestCLIInTmuxAcrossDaemonUpgrade(t *testing.T) {
	cli := buildCLI(t)
	// Registered first, so it runs last, after the daemon is killed.
	shellPID := 0
	t.Cleanup(func() { rptytest.RequireProcessGone(t, shellPID) })
	d := startRptyd(t, "--listen", "127.0.0.1:0", "--view-listen", "", "--http", "127.0.0.1:0", "--backend", "vt")
	addr := d.waitLogged("serving reconnecting pty", nil, 1)[0]["addr"].(string)
	httpAddr := d.waitLogged("serving http", nil, 1)[0]["addr"].(string)
	pane := startTmux(t, append([]string{cli, "--addr", addr, "--http", ""}, shellArgs...)...)
	const restored = "reconnecting pty sessions restored"
	connections := func() int { return onlySessionConnections(t, httpAddr) }

	pane.waitFor("the shell's prompt", func(s screen) bool { return strings.TrimSpace(strings.Join(s.rows, "")) != "" })
	pane.typeIn("PS1='prompt> '; clear; seq -f 'row-%g' 1 12; echo pid=$$\r")
	before := pane.waitFor("the output", func(s screen) bool {
		return slices.Contains(s.rows, "row-12") && slices.Contains(s.rows, "prompt>")
	})
	pid := ""
	for _, r := range before.rows {
		if v, ok := strings.CutPrefix(r, "pid="); ok {
			pid = v
		}
	}
	shellPID, _ = strconv.Atoi(pid)

	// Upgrade 1, SIGUSR2, nothing typed: the pane comes back the same.
	if err := d.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	d.waitLogged(restored, nil, 1)
	deadline := time.Now().Add(waitTimeout)
	for connections() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the CLI did not reconnect after the upgrade")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The status line may flash; then the pane is what it was, cursor
	// included.
	same := func(s screen) bool { return s.cursor == before.cursor && slices.Equal(s.rows, before.rows) }
	deadline = time.Now().Add(waitTimeout)
	after := pane.screen()
	for !same(after) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		after = pane.screen()
	}
	if !same(after) {
		t.Errorf("the pane changed across the upgrade: cursor %s, was %s; now:\n\t|%s\nwas:\n\t|%s",
			after.cursor, before.cursor, strings.Join(after.rows, "\n\t|"), strings.Join(before.rows, "\n\t|"))
	}
	for i := 1; i <= 12; i++ {
		if n := strings.Count(strings.Join(pane.history(), "\n")+"\n", fmt.Sprintf("row-%d\n", i)); n != 1 {
			t.Errorf("row-%d is in the pane %d times after the upgrade, want once", i, n)
		}
	}

	// Upgrade 2, POST /upgrade, typing throughout: each line once, in order.
	posted := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+httpAddr+"/upgrade", "", nil)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("POST /upgrade answered %s; a successful upgrade has no answer", resp.Status)
		}
		posted <- err
	}()
	// The status line shows while the CLI is not connected (for at least
	// its shortest backoff, 125 ms): count the lines typed then, and go on
	// until it has reconnected.
	typed, disconnected := 0, 0
	for extra := 0; extra < 3; {
		typed++
		rows := strings.Split(strings.TrimSuffix(pane.run("capture-pane", "-p"), "\n"), "\n")
		lost := strings.HasPrefix(rows[len(rows)-1], "rpty: connection lost")
		if lost {
			disconnected++
		}
		pane.typeIn(fmt.Sprintf("echo got-$((%d+0))\r", typed))
		if !lost && len(d.logged(restored, nil)) >= 2 && connections() == 1 {
			extra++
		}
		if typed > 500 {
			t.Fatal("the CLI did not reconnect after the second upgrade while 500 lines were typed")
		}
	}
	if err := <-posted; err == nil {
		t.Fatal("POST /upgrade: no error")
	}
	t.Logf("%d lines typed across the POST /upgrade, %d of them while the status line said the connection was lost", typed, disconnected)
	if disconnected == 0 {
		t.Error("no line was typed while the CLI was disconnected by the upgrade: the test did not pin held input")
	}
	pane.typeIn("echo pid=$$ done\r")
	pane.waitFor("the same shell", func(s screen) bool { return slices.Contains(s.rows, "pid="+pid+" done") })
	if err := rptytest.CheckTypedOnce(pane.history(), typed); err != nil {
		t.Fatal(err)
	}
	if n := len(d.logged("reconnecting pty closed", map[string]any{"disconnect_reason": "server_upgrade"})); n != 2 {
		t.Errorf("%d server_upgrade closes logged, want the CLI's connection at each of the 2 upgrades", n)
	}
}
