package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// startBareShell serves bash on a PTY over plain TCP, every byte as it
// comes both ways with no protocol: the echo path of ssh (its encryption
// aside), for the latency table's baseline. It returns the address.
func startBareShell(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveBareShell(t, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func serveBareShell(t *testing.T, c net.Conn) {
	defer c.Close()
	cmd := exec.Command("bash", "--norc", "--noprofile")
	cmd.Env = append(os.Environ(), "TERM=xterm-256color", "PS1=$ ")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Errorf("start bash: %v", err)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(c, ptmx)
	}()
	_, _ = io.Copy(ptmx, c)
	// The connection ended: so does the shell, and with it the copy out.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	_ = ptmx.Close()
	<-done
}

// startBarePane runs, in tmux, a raw relay of the terminal to addr: bash's
// /dev/tcp and two cats, the terminal in raw mode without local echo.
func startBarePane(t *testing.T, addr string) *tmuxPane {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p := startTmux(t, "bash", "--norc", "--noprofile", "-c",
		fmt.Sprintf("stty raw -echo; exec 3<>/dev/tcp/%s/%s; cat <&3 & exec cat >&3", host, port))
	p.waitFor("the prompt", func(s screen) bool { return len(s.rows) > 0 && strings.HasPrefix(s.rows[0], "$") })
	return p
}

// TestCLIPredictionLatencyTable prints keystroke-to-glyph latency for the
// CLI in tmux over links of several round trips, for the report:
// RPTY_PREDICT_RTTS=0,50,150,300 (milliseconds; it is skipped without).
// Each round trip gets its own delaying proxies and three panes: rpty
// -predict on (so that 0 ms predicts too), rpty -predict off, and a bare
// relay of a PTY (ssh-like echo, startBareShell).
func TestCLIPredictionLatencyTable(t *testing.T) {
	spec := os.Getenv("RPTY_PREDICT_RTTS")
	if spec == "" {
		t.Skip("set RPTY_PREDICT_RTTS=0,50,150,300 to print the latency table")
	}
	ln := rptytest.StartServer(t, reconnectingpty.Config{Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"}})
	bare := startBareShell(t)
	bin := buildCLI(t)
	const text = "echo a-line-typed-at-the-prompt-one-key-at-a-time"
	var rows []string
	for _, f := range strings.Split(spec, ",") {
		ms, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("RPTY_PREDICT_RTTS: %v", err)
		}
		rtt := time.Duration(ms) * time.Millisecond
		rptyAddr, bareAddr := ln.Addr().String(), bare
		if rtt > 0 {
			rptyAddr = rptytest.NewDelayProxy(t, rptyAddr, rtt).Addr()
			bareAddr = rptytest.NewDelayProxy(t, bareAddr, rtt).Addr()
		}
		panes := []*tmuxPane{
			startPredictPane(t, bin, rptyAddr, "on"),
			startPredictPane(t, bin, rptyAddr, "off"),
			startBarePane(t, bareAddr),
		}
		time.Sleep(1500 * time.Millisecond) // a heartbeat has measured the round trip
		row := fmt.Sprintf("| %d ms |", ms)
		for _, p := range panes {
			lat := p.typeTimed(text)
			row += fmt.Sprintf(" %.1f / %.1f |", ms1(pct(lat, 0.5)), ms1(pct(lat, 0.95)))
			p.typeIn("\x03")
		}
		rows = append(rows, row)
	}
	t.Logf("keystroke to glyph (CLI in tmux, to the pane), p50 / p95 ms over %d keys:\n"+
		"| round trip | rpty predicting | rpty not predicting | bare PTY relay (ssh-like) |\n| --- | --- | --- | --- |\n%s",
		len(text), strings.Join(rows, "\n"))
}
