package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// daemon is examples/rptyd running as a process, with the addresses it
// logged.
type daemon struct {
	proto, view, http string
}

// startDaemon builds and starts rptyd on loopback ports of its own; the
// cleanup stops it with SIGTERM and waits for it.
func startDaemon(t *testing.T) daemon {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "rptyd")
	if out, err := exec.Command(goTool, "build", "-o", bin, "../rptyd").CombinedOutput(); err != nil {
		t.Fatalf("go build rptyd: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--view-listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--log-format", "json", "--backend", "buffered")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg    string `json:"msg"`
				Fields struct {
					Addr string `json:"addr"`
				} `json:"fields"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Fields.Addr != "" {
				select {
				case addrs <- [2]string{line.Msg, line.Fields.Addr}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if err := cmd.Wait(); err != nil {
			t.Errorf("rptyd: %v", err)
		}
	})
	var d daemon
	timeout := time.After(waitTimeout)
	for d.proto == "" || d.view == "" || d.http == "" {
		select {
		case a := <-addrs:
			switch a[0] {
			case "serving reconnecting pty":
				d.proto = a[1]
			case "serving read-only reconnecting pty":
				d.view = a[1]
			case "serving http":
				d.http = a[1]
			}
		case <-timeout:
			t.Fatalf("rptyd did not log its addresses: %+v", d)
		}
	}
	return d
}

// runCLI runs a command that needs no terminal and returns its status and
// combined output.
func runCLI(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("rpty %v: %v", args, err)
	}
	return 0, string(out)
}

// TestListViewKill: rpty ls shows a session and its clients, rpty --view
// watches it without typing into it, rpty kill ends it for both.
func TestListViewKill(t *testing.T) {
	bin := buildCLI(t)
	d := startDaemon(t)

	if code, out := runCLI(t, bin, "ls", "--http", d.http); code != 0 || !strings.Contains(out, "no live sessions") {
		t.Fatalf("ls on a new daemon: %d %q", code, out)
	}
	id := uuid.NewString()
	writer := startCLI(t, bin, append([]string{"--addr", d.proto, "--id", id}, shellArgs...)...)
	writer.waitFor("bash-")
	writer.typeIn("echo one-$((1+1))\r")
	writer.waitFor("\rone-2\r\n")

	code, out := runCLI(t, bin, "ls", "--http", d.http)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "bash --norc --noprofile") ||
		!strings.Contains(out, "buffered") || !strings.Contains(out, "80x24") {
		t.Fatalf("ls: %d\n%s", code, out)
	}

	// A viewer of a session that is not there fails at once.
	if code, out := runCLI(t, bin, "--view", "--id", uuid.NewString(), "--view-addr", d.view, "--http", d.http); code != 1 ||
		!strings.Contains(out, "no live session") {
		t.Fatalf("--view of no session: %d %q", code, out)
	}
	if code, _ := runCLI(t, bin, "--view"); code != 2 {
		t.Fatalf("--view without --id: exit %d, want 2", code)
	}

	viewer := startCLI(t, bin, "--view", "--id", id, "--view-addr", d.view, "--http", d.http)
	viewer.waitFor("\rone-2\r\n") // the replay
	viewer.typeIn("echo viewer-typed\r")
	writer.typeIn("echo two-$((2+2))\r")
	viewer.waitFor("\rtwo-4\r\n")
	if strings.Contains(writer.output(), "viewer-typed") {
		t.Fatalf("the viewer's typing reached the shell:\n%q", writer.output())
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		_, out = runCLI(t, bin, "ls", "--http", d.http)
		if strings.Contains(out, "2 (1 viewing)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ls does not show the viewer:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if code, out := runCLI(t, bin, "kill", "--http", d.http, id); code != 0 || !strings.Contains(out, "closed "+id) {
		t.Fatalf("kill: %d %q", code, out)
	}
	for _, c := range []*cli{writer, viewer} {
		c.waitExit(0)
		c.waitFor("rpty: session ended")
	}
	if code, out := runCLI(t, bin, "kill", "--http", d.http, id); code != 1 || !strings.Contains(out, "no such session") {
		t.Fatalf("kill again: %d %q", code, out)
	}
	if code, out := runCLI(t, bin, "ls", "--http", d.http); code != 0 || !strings.Contains(out, "no live sessions") {
		t.Fatalf("ls after kill: %d %q", code, out)
	}
}
