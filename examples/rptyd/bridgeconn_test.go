package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
)

// TestBridgeFlowWindow: a page that asks for flow control (flow=1) is sent
// at most flowWindow bytes beyond what it has acknowledged, however much
// the program writes; each acknowledgement lets that much more through,
// and the program, paced meanwhile, loses nothing.
func TestBridgeFlowWindow(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := newTestDaemon(t)
	q := sessionQuery(uuid.New(), "24", "80")
	q.Set("flow", "1")
	conn, resp, err := websocket.Dial(ctx, d.wsURL(q), nil)
	if err != nil {
		t.Fatalf("dial bridge: %v", err)
	}
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	conn.SetReadLimit(-1)

	var req bytes.Buffer
	if err := reconnectingpty.WriteRequest(&req, reconnectingpty.Request{Data: "seq 1 300000; echo flow-$((6*7))-done\r"}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Write(ctx, websocket.MessageBinary, req.Bytes()); err != nil {
		t.Fatal(err)
	}

	// Messages are read on a goroutine of their own: a read whose
	// context ends closes a websocket.Conn, and the test waits with
	// timers.
	type message struct {
		typ websocket.MessageType
		p   []byte
		err error
	}
	msgs := make(chan message)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			typ, p, err := conn.Read(ctx)
			select {
			case msgs <- message{typ, p, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = conn.CloseNow()
		<-readerDone
	})
	var out bytes.Buffer
	take := func(m message) {
		t.Helper()
		if m.err != nil {
			t.Fatalf("read after %d bytes: %v", out.Len(), m.err)
		}
		if m.typ != websocket.MessageBinary {
			t.Fatalf("output as a %v message", m.typ)
		}
		out.Write(m.p)
	}

	// Read without acknowledging: the bridge stops at the window.
	quiet := time.NewTimer(time.Second)
wait:
	for {
		select {
		case m := <-msgs:
			take(m)
			quiet.Reset(time.Second)
		case <-quiet.C:
			break wait
		}
	}
	if out.Len() > flowWindow {
		t.Fatalf("received %d bytes without acknowledging any, want at most the window of %d", out.Len(), flowWindow)
	}
	if out.Len() < flowWindow/2 {
		t.Fatalf("received only %d bytes before the window filled (window %d): is output flowing at all?", out.Len(), flowWindow)
	}

	// Acknowledge as a page does, after rendering: everything arrives.
	acked := 0
	for !bytes.Contains(out.Bytes(), []byte("flow-42-done")) {
		if n := out.Len() - acked; n > 0 {
			if err := conn.Write(ctx, websocket.MessageText, []byte("ack "+strconv.Itoa(n))); err != nil {
				t.Fatalf("acknowledge: %v", err)
			}
			acked += n
		}
		m := <-msgs
		take(m)
		if unacked := out.Len() - acked; unacked > flowWindow {
			t.Fatalf("%d bytes unacknowledged, want at most %d", unacked, flowWindow)
		}
	}
	// Every number, in order: paced, not dropped.
	text := string(bytes.ReplaceAll(out.Bytes(), []byte("\r\n"), []byte("\n")))
	start := strings.Index(text, "\n2\n")
	end := strings.Index(text, "flow-42-done")
	if start < 0 || end < start {
		t.Fatalf("no numbers in the output, which starts %q", text[:min(300, len(text))])
	}
	for i, l := range strings.Split(strings.TrimSpace(text[start:end]), "\n") {
		if l != strconv.Itoa(i+2) {
			t.Fatalf("line %q where %d belongs", l, i+2)
		}
		if i+2 == 300000 {
			return
		}
	}
	t.Fatal("the output ends before 300000")
}

// TestBridgeRefusesBadControlMessages: a text message that is not a valid
// acknowledgement ends the connection with 1003, and the session goes on.
func TestBridgeRefusesBadControlMessages(t *testing.T) {
	t.Parallel()
	d := newTestDaemon(t)
	for _, tc := range []struct {
		name, flow, msg string
	}{
		{"text_without_flow_control", "", "ack 1"},
		{"not_an_ack", "1", "hello"},
		{"ack_of_nothing", "1", "ack 0"},
		{"negative_ack", "1", "ack -5"},
		{"ack_of_more_than_was_sent", "1", "ack 100000000"},
		{"overlong", "1", "ack 1" + strings.Repeat("0", 40)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id := uuid.New()
			q := sessionQuery(id, "24", "80")
			if tc.flow != "" {
				q.Set("flow", tc.flow)
			}
			c := dialBridge(ctx, t, d, q)
			c.send(ctx, reconnectingpty.Request{Data: "echo up-$((2+3))\r"})
			c.waitOutput(ctx, "up-5")
			if err := c.conn.Write(ctx, websocket.MessageText, []byte(tc.msg)); err != nil {
				t.Fatalf("send %q: %v", tc.msg, err)
			}
			if err := c.waitClosed(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
				t.Fatalf("after %q the connection ended with %v, want close 1003", tc.msg, err)
			}
			// The session is untouched: a new connection reaches it.
			again := dialBridge(ctx, t, d, sessionQuery(id, "24", "80"))
			again.send(ctx, reconnectingpty.Request{Data: "echo still-$((3+4))\r"})
			again.waitOutput(ctx, "still-7")
		})
	}
}
