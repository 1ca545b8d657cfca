package main

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
)

// startDaemon builds and runs rptyd with args; it returns its log and a
// channel that yields its exit.
func startDaemon(t *testing.T, args ...string) (*exec.Cmd, *daemonLog, chan error) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rptyd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, append([]string{"--log-format", "json", "--backend", "buffered"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &daemonLog{added: make(chan struct{}, 1)}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		logs.consume(stderr)
	}()
	exited := make(chan error, 1)
	go func() {
		<-logDone
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		exited <- <-exited // the test may have taken it
	})
	return cmd, logs, exited
}

// TestDaemonRefusesARebindingPage pins that the web bridge answers 403,
// before any upgrade, to a request for a host name the daemon does not
// serve, such as a page's own name rebound to 127.0.0.1.
func TestDaemonRefusesARebindingPage(t *testing.T) {
	_, logs, _ := startDaemon(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	addr := logs.find(t, "serving http", nil)["addr"].(string)
	_, port, _ := net.SplitHostPort(addr)
	query := "/ws?reconnect=" + uuid.NewString() + "&command=echo+ran"

	req, err := http.NewRequest(http.MethodGet, "http://"+addr+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example:" + port
	for k, v := range map[string]string{
		"Origin": "http://evil.example:" + port, "Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
	} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("rebinding request: status %d, want 403", resp.StatusCode)
	}

	// The daemon's own page, with its Origin, is served.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+query, &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"http://" + addr}},
	})
	if err != nil {
		t.Fatalf("same-origin bridge: %v", err)
	}
	defer ws.CloseNow()
	_, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg) == "" {
		t.Fatal("no output")
	}
}

// TestDaemonSecondSignalCutsTheDrain pins what main's comment says: a
// second SIGTERM ends the graceful shutdown at once, even with a client
// that will never take its last output.
func TestDaemonSecondSignalCutsTheDrain(t *testing.T) {
	cmd, logs, exited := startDaemon(t, "--listen", "127.0.0.1:0", "--http", "", "--drain", "5m")
	addr := logs.find(t, "serving reconnecting pty", nil)["addr"].(string)
	// A client that reads nothing while the output floods.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := reconnectingpty.WriteInit(c, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, Command: "yes flood"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		t.Fatalf("rptyd exited (%v) while a client was owed output, before the drain ended", err)
	case <-time.After(time.Second):
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("rptyd exited with %v", err)
		}
		exited <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("rptyd still draining 20 s after a second SIGTERM")
	}
}
