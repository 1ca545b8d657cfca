package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
)

// listSessions asks GET /sessions.
func (d *testDaemon) listSessions(ctx context.Context) []sessionJSON {
	d.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"sessions", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("GET /sessions: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		d.t.Fatalf("GET /sessions: %s, %q", res.Status, res.Header.Get("Content-Type"))
	}
	var out []sessionJSON
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		d.t.Fatalf("GET /sessions: %v", err)
	}
	return out
}

// deleteSession asks DELETE /sessions/{id} and returns the status and body.
func (d *testDaemon) deleteSession(ctx context.Context, id string) (int, string) {
	d.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, d.base+"sessions/"+id, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("DELETE /sessions/%s: %v", id, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestSessionsAPI: the list shows what the bridge started, with its clients;
// view=1 watches without typing; DELETE ends the session for every client
// with the "session ended" close, and frees the ID.
func TestSessionsAPI(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := newTestDaemon(t)
	if got := d.listSessions(ctx); len(got) != 0 {
		t.Fatalf("a new daemon lists %+v", got)
	}

	id := uuid.New()
	c := dialBridge(ctx, t, d, sessionQuery(id, "30", "100"))
	c.send(ctx, reconnectingpty.Request{Data: "echo ready-$((1+1))\r"})
	c.waitOutput(ctx, "ready-2")
	q := sessionQuery(id, "50", "200")
	q.Set("view", "1")
	v := dialBridge(ctx, t, d, q)
	v.waitOutput(ctx, "ready-2")
	v.send(ctx, reconnectingpty.Request{Data: "echo viewer-$((2+2))\r"})
	v.send(ctx, reconnectingpty.Request{Height: 9, Width: 9})
	c.send(ctx, reconnectingpty.Request{Data: "echo size=$(stty size)=end\r"})
	out := c.waitOutput(ctx, "size=30 100=end")
	if strings.Contains(out, "viewer-") {
		t.Fatalf("the viewer's input reached the shell:\n%s", out)
	}

	var s sessionJSON
	for deadline := time.Now().Add(10 * time.Second); ; {
		list := d.listSessions(ctx)
		if len(list) == 1 && list[0].Connections == 2 {
			s = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /sessions = %+v, want one session with two clients", list)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.ID != id || s.Command != testShell || s.ReadOnly != 1 || s.Backend != reconnectingpty.BackendBuffered ||
		s.Height != 30 || s.Width != 100 || s.PID <= 0 || s.AgeSeconds < 0 || s.AgeSeconds > 30 {
		t.Errorf("listed as %+v", s)
	}

	for _, bad := range []string{"not-a-uuid", uuid.Nil.String()} {
		if code, _ := d.deleteSession(ctx, bad); code != http.StatusBadRequest {
			t.Errorf("DELETE /sessions/%s: %d, want 400", bad, code)
		}
	}
	if code, _ := d.deleteSession(ctx, uuid.NewString()); code != http.StatusNotFound {
		t.Errorf("DELETE of an unknown session: %d, want 404", code)
	}
	if code, body := d.deleteSession(ctx, id.String()); code != http.StatusNoContent {
		t.Fatalf("DELETE /sessions/%s: %d %s", id, code, body)
	}
	for _, w := range []*wsClient{c, v} {
		if err := w.waitClosed(ctx); websocket.CloseStatus(err) != statusSessionEnded {
			t.Errorf("after DELETE: %v, want close status %d", err, statusSessionEnded)
		}
	}
	if got := d.listSessions(ctx); len(got) != 0 {
		t.Errorf("after DELETE the list is %+v", got)
	}

	// A viewer of a session that is not there is told it ended.
	v = dialBridge(ctx, t, d, q)
	if err := v.waitClosed(ctx); websocket.CloseStatus(err) != statusSessionEnded {
		t.Errorf("viewing a closed session: %v, want close status %d", err, statusSessionEnded)
	}
	if got := d.listSessions(ctx); len(got) != 0 {
		t.Errorf("a viewer started a session: %+v", got)
	}

	// Only view=1 or 0 is a valid view parameter.
	bad := sessionQuery(id, "", "")
	bad.Set("view", "yes")
	res, err := http.Get(d.wsURLHTTP(bad))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("view=yes: %s, want 400", res.Status)
	}
}

// wsURLHTTP is the bridge's URL over plain HTTP, for a request that must be
// refused before the upgrade.
func (d *testDaemon) wsURLHTTP(q url.Values) string { return d.base + "ws?" + q.Encode() }
