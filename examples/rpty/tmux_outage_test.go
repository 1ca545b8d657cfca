package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/netnstest"
)

// visible is what the pane shows now, as text.
func (p *tmuxPane) visible() string {
	p.t.Helper()
	return p.run("capture-pane", "-p")
}

// waitVisible polls the pane's screen until cond holds.
func (p *tmuxPane) waitVisible(what string, d time.Duration, cond func(screen string) bool) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := p.visible()
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not within %s; screen:\n%s", what, d, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startTmuxIn is startTmux with the tmux server, and so the command, inside
// ns; the pane keeps 100000 lines of history, and stays when its program
// exits, to show why.
func startTmuxIn(t *testing.T, ns *netnstest.NS, command ...string) *tmuxPane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: apt-get install tmux")
	}
	dir := t.TempDir()
	p := &tmuxPane{t: t, sock: filepath.Join(dir, "tmux.sock"), crash: filepath.Join(dir, "crash")}
	conf := filepath.Join(dir, "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g history-limit 100000\nset -g status off\nset -g remain-on-exit on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"netns", "exec", ns.Name(), "tmux", "-S", p.sock, "-f", conf,
		"new-session", "-d", "-x", "80", "-y", "24", "-e", "RPTY_CRASH_OUTPUT=" + p.crash}, command...)
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-S", p.sock, "kill-server").Run()
		checkNoProcessWith(t, p.sock)
		checkNoProcessWith(t, command[0])
	})
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("start tmux in the namespace: %v: %s", err, out)
	}
	return p
}

var tmuxTickRE = regexp.MustCompile(`(?m)^tick (\d+) *$`)

// lastTick is the newest tick on a screen, 0 if none.
func lastTick(screen string) int {
	n := 0
	for _, m := range tmuxTickRE.FindAllStringSubmatch(screen, -1) {
		n = max(n, atoi(m[1]))
	}
	return n
}

// fullHistory is everything the pane showed, as text.
func (p *tmuxPane) fullHistory() string {
	p.t.Helper()
	return p.run("capture-pane", "-p", "-S", "-", "-E", "-")
}

// countLine counts the lines of screen that read want.
func countLine(screen, want string) int {
	n := 0
	for _, l := range strings.Split(screen, "\n") {
		if strings.TrimRight(l, " ") == want {
			n++
		}
	}
	return n
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestCLIOutageInTmux runs the server and the CLI in tmux inside a network
// namespace of the test's own and drops the server port's packets both
// ways with nftables while the session prints a numbered tick every 50 ms
// and lines are typed, reading the screen as a user sees it
// (capture-pane). Per outage (netnstest.Outages: RPTY_OUTAGES,
// RPTY_OUTAGE_COUNT; one of 5 s by default) the status line says the
// connection was lost within 5 s, output is on the screen again within 1 s
// of the network's return (p95), the typed lines reach the program once,
// and over the run no tick is lost or repeated.
func TestCLIOutageInTmux(t *testing.T) {
	if why := netnstest.Available(); why != "" {
		t.Skip(why)
	}
	plan := netnstest.Outages(t)
	bin := buildCLI(t)
	ns := netnstest.New(t)
	var conns netnstest.Conns
	cfg := reconnectingpty.Config{
		Commander:        reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:          reconnectingpty.BackendBuffered,
		ReportConnection: conns.Report,
	}
	for _, d := range plan {
		// A session outlives its last connection for Timeout.
		cfg.Timeout = max(cfg.Timeout, 5*time.Minute, d+time.Minute)
	}
	srv, err := reconnectingpty.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	port := ln.Addr().(*net.TCPAddr).Port

	pane := startTmuxIn(t, ns, bin, "--addr", ln.Addr().String(), "--backend", "buffered",
		"--", "bash", "--norc", "--noprofile", "-c", outageProgram)
	pane.waitVisible("the ticks", 30*time.Second, func(s string) bool { return lastTick(s) >= 5 })

	var outages []netnstest.Outage
	for i, length := range plan {
		from := lastTick(pane.visible())
		pane.waitVisible("ticks before the outage", 20*time.Second, func(s string) bool { return lastTick(s) >= from+10 })
		o := netnstest.Outage{Length: length, Noticed: -1, ServerHeld: -1}
		blocked := time.Now()
		if err := ns.Block(port); err != nil {
			t.Fatal(err)
		}
		keys, gap := netnstest.KeysFor(length)
		next := blocked
		for k := 0; time.Since(blocked) < length; {
			if k < keys && time.Now().After(next.Add(gap)) {
				k++
				pane.run("send-keys", "-l", fmt.Sprintf("key %d.%d", i+1, k), ";", "send-keys", "Enter")
				next = time.Now()
			}
			if o.Noticed < 0 && strings.Contains(pane.visible(), "rpty: connection lost") {
				o.Noticed = time.Since(blocked)
			}
			time.Sleep(10 * time.Millisecond)
		}
		before := lastTick(pane.visible())
		if err := ns.Unblock(); err != nil {
			t.Fatal(err)
		}
		returned := time.Now()
		pane.waitVisible("output after the network returned", 30*time.Second, func(s string) bool { return lastTick(s) > before })
		o.Live = time.Since(returned)
		o.Keys = keys
		for k := 1; k <= keys; k++ {
			line := fmt.Sprintf("got:key %d.%d", i+1, k)
			deadline := time.Now().Add(20 * time.Second)
			for countLine(pane.fullHistory(), line) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s: not on the screen 20 s after the network returned; screen:\n%s", line, pane.visible())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		if held, why, ok := conns.WaitHeld(blocked, 20*time.Second); ok {
			o.ServerHeld, o.ServerWhy = held, why
		}
		outages = append(outages, o)
	}
	time.Sleep(300 * time.Millisecond)
	history := pane.fullHistory()
	for i := range outages {
		for k := 1; k <= outages[i].Keys; k++ {
			if countLine(history, fmt.Sprintf("got:key %d.%d", i+1, k)) == 1 {
				outages[i].KeysOnce++
			}
		}
	}
	var ticks []int
	for _, m := range tmuxTickRE.FindAllStringSubmatch(history, -1) {
		ticks = append(ticks, atoi(m[1]))
	}
	lost, repeated := netnstest.LostRepeated(ticks)
	netnstest.Check(t, "CLI (rpty in tmux)", outages, lost, repeated)
	if t.Failed() {
		t.Logf("screen history (end):\n%s", tail(history))
	}

	// Ctrl-\ d detaches: rpty exits 0.
	pane.run("send-keys", "C-\\", "d")
	waitExitZero(t, pane, 10*time.Second)
}

// waitExitZero waits for the pane's program to exit 0. If it has not, the
// failure says what tmux saw and where the program is: each thread's state,
// wait channel and kernel stack, its descriptors and, if it still runs in
// user space, every goroutine (SIGQUIT, copied to RPTY_CRASH_OUTPUT since
// the terminal may be gone).
func waitExitZero(t *testing.T, pane *tmuxPane, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var dead, status, pid, server string
	var unreaped time.Time
	for time.Now().Before(deadline) {
		f := strings.Split(strings.TrimSpace(pane.run("display", "-p", "#{pane_dead}|#{pane_dead_status}|#{pane_pid}|#{pid}")), "|")
		if len(f) == 4 {
			dead, status, pid, server = f[0], f[1], f[2], f[3]
			if dead == "1" && status == "0" {
				return
			}
		}
		// tmux 3.3 marks a pane dead when its terminal closes and learns
		// the status when it reaps the child. Built with libutempter (as
		// Debian's is), it closes the terminal through
		// utempter_remove_record, which swaps in a SIGCHLD handler of its
		// own for a moment: a child that exits then is never reaped, and
		// stays a zombie (tmux issue 311). Another SIGCHLD makes tmux
		// reap it and so learn the real status; the test counts on that,
		// not on reading the zombie itself.
		if dead == "1" && status == "" {
			if unreaped.IsZero() {
				unreaped = time.Now()
			} else if time.Since(unreaped) > 200*time.Millisecond && processState(atoi(pid)) == "Z" {
				t.Logf("tmux left rpty (pid %s) a zombie with its pane dead: SIGCHLD to the tmux server (pid %s)", pid, server)
				_ = syscall.Kill(atoi(server), syscall.SIGCHLD)
				unreaped = time.Now()
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	why := processReport(atoi(pid))
	if st := processState(atoi(pid)); st != "" && st != "Z" {
		_ = syscall.Kill(atoi(pid), syscall.SIGQUIT)
		time.Sleep(2 * time.Second)
	}
	if b, err := os.ReadFile(pane.crash); err == nil && len(b) > 0 {
		why += "\ncrash output (SIGQUIT):\n" + string(b)
	}
	t.Fatalf("rpty's exit: not within %s (tmux: dead %q, status %q, pid %s)\n%s\npane:\n%s", d, dead, status, pid, why, tail(pane.fullHistory()))
}

// processState is the state letter /proc gives pid (R, S, D, Z, ...), or
// "" if there is no such process.
func processState(pid int) string {
	if pid <= 0 {
		return ""
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+3 <= len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// processReport says what /proc knows of pid: its state, parent and
// signal masks, each thread's state, wait channel and kernel stack, and
// its open descriptors.
func processReport(pid int) string {
	if pid <= 0 {
		return "no pid"
	}
	var b strings.Builder
	dir := fmt.Sprintf("/proc/%d", pid)
	st, err := os.ReadFile(dir + "/status")
	if err != nil {
		return fmt.Sprintf("process %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		for _, k := range []string{"State:", "PPid:", "Threads:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigIgn:", "SigCgt:"} {
			if strings.HasPrefix(l, k) {
				b.WriteString(l + "\n")
			}
		}
	}
	tasks, _ := os.ReadDir(dir + "/task")
	for _, task := range tasks {
		td := dir + "/task/" + task.Name()
		stat, _ := os.ReadFile(td + "/stat")
		wchan, _ := os.ReadFile(td + "/wchan")
		stack, _ := os.ReadFile(td + "/stack")
		state := string(stat)
		if i := strings.LastIndexByte(state, ')'); i >= 0 && i+3 <= len(state) {
			state = state[i+2 : i+3]
		}
		fmt.Fprintf(&b, "thread %s: state %s, wchan %s\n%s", task.Name(), state, wchan, stack)
	}
	fds, _ := os.ReadDir(dir + "/fd")
	for _, fd := range fds {
		target, _ := os.Readlink(dir + "/fd/" + fd.Name())
		fmt.Fprintf(&b, "fd %s -> %s\n", fd.Name(), target)
	}
	return b.String()
}
