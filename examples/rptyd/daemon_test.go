package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
)

// daemonLog collects rptyd's JSON log lines from its stderr.
type daemonLog struct {
	mu    sync.Mutex
	lines []map[string]any
	bad   []string
	added chan struct{}
}

func (l *daemonLog) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m map[string]any
		l.mu.Lock()
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			l.bad = append(l.bad, sc.Text())
		} else {
			l.lines = append(l.lines, m)
		}
		l.mu.Unlock()
		select {
		case l.added <- struct{}{}:
		default:
		}
	}
}

// find waits for a line with msg whose fields include want.
func (l *daemonLog) find(t *testing.T, msg string, want map[string]any) map[string]any {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if line["msg"] != msg {
				continue
			}
			fields, _ := line["fields"].(map[string]any)
			match := true
			for k, v := range want {
				if fields[k] != v {
					match = false
				}
			}
			if match {
				l.mu.Unlock()
				return fields
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-deadline:
			l.mu.Lock()
			var same []map[string]any
			for _, line := range l.lines {
				if line["msg"] == msg {
					same = append(same, line)
				}
			}
			n, bad := len(l.lines), l.bad
			l.mu.Unlock()
			t.Fatalf("no %q log line with %v; of %d lines, those with that message: %v; unparsed: %q", msg, want, n, same, bad)
		}
	}
}

// TestDaemonAsAUserMeetsIt builds rptyd, attaches over TCP, drops the
// connection, reattaches, and stops the daemon with SIGTERM: it must exit 0
// within 5 s leaving no process of any session behind, and say in its JSON
// log why each connection closed.
func TestDaemonAsAUserMeetsIt(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rptyd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	markBytes := make([]byte, 8)
	_, _ = rand.Read(markBytes)
	marker := "RPTYD_TEST_MARK=" + hex.EncodeToString(markBytes)

	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--view-listen", "127.0.0.1:0", "--http", "", "--log-format", "json", "--backend", "buffered")
	cmd.Env = append(os.Environ(), marker)
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
		<-logDone // Wait closes the pipe; read it all first
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	addr := logs.find(t, "serving reconnecting pty", nil)["addr"].(string)
	id := uuid.New()

	c1 := dialDaemon(t, addr, reconnectingpty.Init{ID: id, Height: 24, Width: 80, Command: "bash --norc --noprofile"})
	c1.send("X=kept; sleep 1000 & echo bg-\"\"started\r")
	c1.expect("bg-started")
	c1.close()
	logs.find(t, "reconnecting pty closed", map[string]any{"disconnect_reason": "graceful", "disconnect_initiator": "client"})

	c2 := dialDaemon(t, addr, reconnectingpty.Init{ID: id, Height: 24, Width: 80})
	c2.expect("bg-started") // the replay
	c2.send("echo X=$X\r")
	c2.expect("X=kept")

	// On the view port the same session is watched: output arrives, and
	// the viewer's typing goes nowhere.
	viewAddr := logs.find(t, "serving read-only reconnecting pty", nil)["addr"].(string)
	v := dialDaemon(t, viewAddr, reconnectingpty.Init{ID: id, Height: 24, Width: 80})
	v.expect("X=kept")
	v.send("echo viewer-\"\"typed\r")
	logs.find(t, "input from a read-only connection ignored", nil)
	c2.send("echo after-\"\"view\r")
	c2.expect("after-view")
	v.expect("after-view")
	c2.mu.Lock()
	leaked := strings.Contains(c2.out.String(), "viewer-typed")
	c2.mu.Unlock()
	if leaked {
		t.Fatal("input on the view port reached the shell")
	}
	v.close()

	// The daemon, the shell and the background sleep carry the marker:
	// the leak check below can see them.
	if pids := markedProcesses(marker); len(pids) < 3 {
		t.Fatalf("want rptyd, bash and sleep marked, found %v", pids)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("rptyd exited with %v after SIGTERM", err)
		}
		exited <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("rptyd still running 5 s after SIGTERM")
	}
	t.Logf("rptyd stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	<-c2.done // the client read EOF
	fields := logs.find(t, "reconnecting pty closed", map[string]any{"disconnect_reason": "server_shutdown"})
	if fields["disconnect_expected"] != true || fields["disconnect_initiator"] != "server" {
		t.Fatalf("shutdown close attributed as %v", fields)
	}
	if len(logs.bad) > 0 {
		t.Fatalf("stderr lines that are not JSON: %q", logs.bad)
	}
	if pids := markedProcesses(marker); len(pids) > 0 {
		t.Fatalf("processes left behind by rptyd: %v", pids)
	}
}

// daemonClient is a TCP client of the protocol that keeps all it reads.
type daemonClient struct {
	t    *testing.T
	conn net.Conn
	done chan struct{}

	mu  sync.Mutex
	out bytes.Buffer
}

func dialDaemon(t *testing.T, addr string, init reconnectingpty.Init) *daemonClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := reconnectingpty.WriteInit(c, init); err != nil {
		t.Fatal(err)
	}
	dc := &daemonClient{t: t, conn: c, done: make(chan struct{})}
	go func() {
		defer close(dc.done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			dc.mu.Lock()
			dc.out.Write(buf[:n])
			dc.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(dc.close)
	return dc
}

// close ends the connection as a client that means to: a FIN, then, once
// the daemon has closed its side, the socket. (A plain Close with output
// still unread in the socket would send a reset, which the daemon rightly
// logs as a network error.)
func (dc *daemonClient) close() {
	if tc, ok := dc.conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	select {
	case <-dc.done:
	case <-time.After(5 * time.Second):
	}
	_ = dc.conn.Close()
	<-dc.done
}

func (dc *daemonClient) send(data string) {
	dc.t.Helper()
	if err := reconnectingpty.WriteRequest(dc.conn, reconnectingpty.Request{Data: data}); err != nil {
		dc.t.Fatal(err)
	}
}

func (dc *daemonClient) expect(want string) {
	dc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dc.mu.Lock()
		got := dc.out.String()
		dc.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			dc.t.Fatalf("no %q in %q", want, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// markedProcesses lists the processes whose environment holds marker.
func markedProcesses(marker string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err == nil && bytes.Contains(env, []byte(marker+"\x00")) {
			out = append(out, filepath.Base(d))
		}
	}
	return out
}
