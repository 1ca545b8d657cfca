package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
)

// count is how many lines with msg the daemon has logged.
func (l *daemonLog) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if line["msg"] == msg {
			n++
		}
	}
	return n
}

// waitCount waits until the daemon has logged n lines with msg.
func (l *daemonLog) waitCount(t *testing.T, msg string, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for l.count(msg) < n {
		select {
		case <-l.added:
		case <-deadline:
			t.Fatalf("%d %q log lines in 30s, want %d", l.count(msg), msg, n)
		}
	}
}

// TestDaemonUpgradesInPlace pins rptyd's two ways to upgrade, SIGUSR2 and
// POST /upgrade: a shell and its resuming client carry on, with the same
// process, through both; a web page cannot ask for one.
func TestDaemonUpgradesInPlace(t *testing.T) {
	cmd, logs, _ := startDaemon(t, "--listen", "127.0.0.1:0", "--view-listen", "", "--http", "127.0.0.1:0")
	addr := logs.find(t, "serving reconnecting pty", nil)["addr"].(string)
	httpAddr := logs.find(t, "serving http", nil)["addr"].(string)

	var mu sync.Mutex
	var out bytes.Buffer
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	c, err := client.Dial(context.Background(), dial, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80},
		client.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		<-readDone
	})
	expect := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			got := out.String()
			mu.Unlock()
			if strings.Contains(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in %q", want, got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sessionPIDs := func() []int {
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
		var pids []int
		for _, i := range infos {
			pids = append(pids, i.PID)
		}
		return pids
	}
	_, _ = c.Write([]byte("echo before-$((6*7))\r"))
	expect("before-42\r\n")
	pids := sessionPIDs()
	if len(pids) != 1 {
		t.Fatalf("sessions %v, want one", pids)
	}

	const restored = "reconnecting pty sessions restored"
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	logs.waitCount(t, restored, 1)
	_, _ = c.Write([]byte("echo signalled-$((6*7))\r"))
	expect("signalled-42\r\n")

	// A page in a browser sends an Origin; it is refused.
	req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/upgrade", nil)
	req.Header.Set("Origin", "http://"+httpAddr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST /upgrade from a page: %s, want 403", resp.Status)
	}
	// An updater's POST: the connection ends with the old image.
	if resp, err := http.Post("http://"+httpAddr+"/upgrade", "", nil); err == nil {
		resp.Body.Close()
		t.Fatalf("POST /upgrade answered %s; a successful upgrade has no answer", resp.Status)
	}
	logs.waitCount(t, restored, 2)
	_, _ = c.Write([]byte("echo posted-$((6*7))\r"))
	expect("posted-42\r\n")
	if after := sessionPIDs(); len(after) != 1 || after[0] != pids[0] {
		t.Fatalf("sessions %v after two upgrades, were %v", after, pids)
	}
	logs.mu.Lock()
	upgradeCloses := 0
	for _, line := range logs.lines {
		if f, _ := line["fields"].(map[string]any); line["msg"] == "reconnecting pty closed" && f["disconnect_reason"] == "server_upgrade" {
			upgradeCloses++
		}
	}
	logs.mu.Unlock()
	if upgradeCloses != 2 {
		t.Errorf("%d server_upgrade closes logged, want the client's connection at each of the 2 upgrades", upgradeCloses)
	}
}
