package main

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/netnstest"
)

// outageProgram prints a numbered tick every 50 ms and answers every input
// line with "got:<line>", without echo.
const outageProgram = `stty -echo; (i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.05; done) & ` +
	`while IFS= read -r l; do echo "got:$l"; done`

var (
	cliTickRE   = regexp.MustCompile(`tick (\d+)\r\n`)
	statusRE    = regexp.MustCompile(`\x1b7.*?\x1b8`)
	reconnectRE = regexp.MustCompile(`rpty: connection lost`)
)

// TestCLIOutage runs the CLI and the server inside a network namespace of
// the test's own and drops the server port's packets both ways for 5 s
// with nftables: the status line says reconnecting within 5 s, output is
// back within about a second of the path's return, nothing is lost or
// repeated, and keys typed during the outage reach the program once.
func TestCLIOutage(t *testing.T) {
	if why := netnstest.Available(); why != "" {
		t.Skip(why)
	}
	const outage = 5 * time.Second
	bin := buildCLI(t)
	ns := netnstest.New(t)
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:   reconnectingpty.BackendBuffered,
	})
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

	c := startCLI(t, "ip", "netns", "exec", ns.Name(), bin, "--addr", ln.Addr().String(), "--backend", "buffered",
		"--", "bash", "--norc", "--noprofile", "-c", outageProgram)
	c.waitFor("tick 20\r\n")
	ticks := func() int { return len(cliTickRE.FindAllString(statusRE.ReplaceAllString(c.output(), ""), -1)) }

	blocked := time.Now()
	if err := ns.Block(port); err != nil {
		t.Fatal(err)
	}
	const keys = 4
	for i := 1; i <= keys; i++ {
		time.Sleep(outage / (keys + 1))
		c.typeIn("key " + strconv.Itoa(i) + "\r")
	}
	var noticed time.Duration = -1
	for time.Since(blocked) < outage {
		if noticed < 0 && reconnectRE.MatchString(c.output()) {
			noticed = time.Since(blocked)
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := ticks()
	if err := ns.Unblock(); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	for ticks() <= before {
		if time.Since(returned) > time.Minute {
			t.Fatalf("no output a minute after the network returned:\n%q", c.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	live := time.Since(returned)
	for i := 1; i <= keys; i++ {
		c.waitFor("got:key " + strconv.Itoa(i) + "\r\n")
	}
	time.Sleep(300 * time.Millisecond)
	text := statusRE.ReplaceAllString(c.output(), "")
	lost, repeated, last := 0, 0, 0
	for _, m := range cliTickRE.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[1])
		switch {
		case n <= last:
			repeated++
		case n > last+1:
			lost += n - last - 1
		}
		last = max(last, n)
	}
	once := 0
	for i := 1; i <= keys; i++ {
		if strings.Count(text, "got:key "+strconv.Itoa(i)+"\r\n") == 1 {
			once++
		}
	}
	t.Logf("| CLI (rpty) | %s | %s | %s | %d / %d | %d of %d |", outage, noticed.Round(10*time.Millisecond),
		live.Round(10*time.Millisecond), lost, repeated, once, keys)
	if noticed < 0 || noticed > 5*time.Second {
		t.Errorf("the status line said reconnecting after %s, want within 5 s", noticed)
	}
	if live > 2*time.Second {
		t.Errorf("output resumed %s after the network returned, want about 1 s", live)
	}
	if lost != 0 || repeated != 0 || once != keys {
		t.Errorf("%d ticks lost, %d repeated, %d of %d keys once; output:\n%q", lost, repeated, once, keys, tail(text))
	}
	c.typeIn("\x1cd") // Ctrl-\ d detaches
	c.waitExit(0)
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
