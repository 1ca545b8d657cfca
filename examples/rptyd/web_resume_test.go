package main

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
)

// TestBridgeResumeQuery checks that the bridge passes the page's resume
// request into the init, and leaves it out when the page does not ask.
func TestBridgeResumeQuery(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	for _, tc := range []struct {
		query  string
		resume bool
		offset uint64
	}{
		{"", false, 0},
		{"&resume=0", false, 0},
		{"&resume=1", true, 0},
		{"&resume=1&offset=0", true, 0},
		{"&resume=1&offset=18446744073709551615", true, 18446744073709551615},
	} {
		q, err := url.ParseQuery("reconnect=" + id.String() + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		init, err := initFromQuery(q)
		if err != nil {
			t.Fatalf("%q: %v", tc.query, err)
		}
		if init.Resume != tc.resume || init.Offset != tc.offset {
			t.Errorf("%q: Resume %v Offset %d, want %v %d", tc.query, init.Resume, init.Offset, tc.resume, tc.offset)
		}
	}
}

// TestWebSocketCatchingUpClose checks how the server attributes a page's
// closes: the catch-up close (4001) of the page's flow control is a
// graceful close by the client, like a normal closure; an unknown code is
// not.
func TestWebSocketCatchingUpClose(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reasons := make(chan string, 3)
	d := newTestDaemon(t, func(cfg *reconnectingpty.Config) {
		cfg.ReportConnection = func(uuid.UUID, string) func(int, string) {
			return func(_ int, reason string) { reasons <- reason }
		}
	})
	id := uuid.New()
	for _, tc := range []struct {
		code websocket.StatusCode
		want string
	}{
		{statusCatchingUp, string(reconnectingpty.DisconnectGraceful)},
		{websocket.StatusNormalClosure, string(reconnectingpty.DisconnectGraceful)},
		{4999, string(reconnectingpty.DisconnectNetworkError)},
	} {
		q := sessionQuery(id, "", "")
		q.Set("resume", "1")
		c := dialBridge(ctx, t, d, q)
		c.send(ctx, reconnectingpty.Request{Data: "echo code-" + strconv.Itoa(int(tc.code)) + "\r"})
		c.waitOutput(ctx, "code-"+strconv.Itoa(int(tc.code))+"\r\n")
		if err := c.conn.Close(tc.code, "test"); err != nil {
			t.Fatalf("close with %d: %v", tc.code, err)
		}
		select {
		case got := <-reasons:
			if got != tc.want {
				t.Errorf("close with %d reported as %q, want %q", tc.code, got, tc.want)
			}
		case <-ctx.Done():
			t.Fatalf("close with %d never reported", tc.code)
		}
	}
}
