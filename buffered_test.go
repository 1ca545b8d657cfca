package reconnectingpty

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestReplayThenLiveIsExact attaches while a program is writing fast and
// checks that the replay plus the live output is the program's output with
// no byte missed or repeated.
func TestReplayThenLiveIsExact(t *testing.T) {
	t.Parallel()
	const last = 300000
	ts := newTestServer(t, BackendBuffered, Config{BufferSize: 4096})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: "seq 1 " + strconv.Itoa(last) + "; sleep 0.5"})
	a.expect("\n100000\r")
	b := ts.connect(Init{ID: id})
	for name, c := range map[string]*testClient{"creator": a, "late": b} {
		out := c.expectEOF()
		lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
		first, err := strconv.Atoi(lines[0])
		if err != nil {
			t.Fatalf("%s: first line %q is not a whole number", name, lines[0])
		}
		if name == "creator" && first != 1 {
			t.Fatalf("creator's output starts at %d", first)
		}
		for i, l := range lines {
			if l != strconv.Itoa(first+i) {
				t.Fatalf("%s: line %d is %q, want %d (missed or repeated output)", name, i, l, first+i)
			}
		}
		if got := first + len(lines) - 1; got != last {
			t.Fatalf("%s: output ends at %d, want %d", name, got, last)
		}
	}
}

// TestSlowReaderIsPacedNotCutOff pins that a lone connection reading more
// slowly than the program writes slows the program down, as a slow
// terminal would, instead of being cut off, as long as it makes progress.
func TestSlowReaderIsPacedNotCutOff(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{
		BufferSize: 4 << 10, ConnQueueSize: 64 << 10, SlowConsumerTimeout: 2 * time.Second,
	})
	client, server := net.Pipe()
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		_ = ts.srv.ServeConn(t.Context(), server)
	}()
	defer client.Close()
	const last = 100000 // about 600 KB: ten times the queue limit
	if err := WriteInit(client, Init{ID: uuid.New(), Height: 24, Width: 80, Command: "seq 1 " + strconv.Itoa(last)}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := client.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
		time.Sleep(200 * time.Microsecond) // a reader slower than seq
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\r\n"), "\r\n")
	if len(lines) != last || lines[len(lines)-1] != strconv.Itoa(last) {
		t.Fatalf("got %d lines ending %q, want all %d", len(lines), lines[len(lines)-1], last)
	}
	requireClose(t, ts.waitForCloses(1)[0], DisconnectProcessExited)
}

// TestCreatorSeesOutputFromTheFirstByte pins that the connection that
// creates a session gets all of a command's output, even when the command
// writes more than the replay buffer holds, and exits, before that
// connection has attached.
func TestCreatorSeesOutputFromTheFirstByte(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{BufferSize: 256})
	cmd, err := ts.srv.cfg.Commander.Command(t.Context(), CommandRequest{Command: "seq 1 300"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := startBuffered(ts.srv, cmd, 24, 80, ts.srv.logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		b.close(disconnect{reason: DisconnectServerShutdown})
		<-b.done()
	}()
	// About 1.4 KB written, which the PTY holds, and exited; nobody has
	// attached yet.
	select {
	case <-b.exited:
	case <-time.After(shortWait):
		t.Fatal("command did not exit")
	}

	client, server := net.Pipe()
	defer client.Close()
	c := &conn{Conn: server}
	a, err := b.attach(c, attachRequest{height: 24, width: 80, queueSize: ts.srv.cfg.ConnQueueSize})
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	a.detach()
	lines := strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n")
	if len(lines) != 300 || lines[0] != "1" {
		t.Fatalf("creator got %d lines starting %q, want all 300 from 1", len(lines), lines[0])
	}
}

// TestOutputStaysExactWhenASocketFillsMidChunk pins the hand-over between
// the reader, which writes straight to a client's socket while nothing is
// queued for it, and the connection's writer, which takes what a full
// socket did not: over TCP with small socket buffers and a client that
// reads in bursts, every byte still arrives once and in order, for two
// clients at once.
func TestOutputStaysExactWhenASocketFillsMidChunk(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{SlowConsumerTimeout: 10 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetReadBuffer(32 << 10)
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = s.(*net.TCPConn).SetWriteBuffer(32 << 10)
		ts.wg.Add(1)
		go func() {
			defer ts.wg.Done()
			_ = ts.srv.ServeConn(t.Context(), s)
		}()
		return c
	}
	const last = 200000 // about 1.3 MB
	id := uuid.New()
	init := Init{ID: id, Height: 24, Width: 80, Command: "read -r go; seq 1 " + strconv.Itoa(last)}
	clients := []net.Conn{dial(), dial()}
	for _, c := range clients {
		defer c.Close()
		// Either may create the session; the other joins it.
		if err := WriteInit(c, init); err != nil {
			t.Fatal(err)
		}
	}
	for ts.srv.ConnCount() < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := WriteRequest(clients[0], Request{Data: "\r"}); err != nil {
		t.Fatal(err)
	}
	outs := make([]bytes.Buffer, len(clients))
	done := make(chan error, len(clients))
	for i, c := range clients {
		go func() {
			buf := make([]byte, 3000)
			for n := 0; ; n++ {
				m, err := c.Read(buf)
				outs[i].Write(buf[:m])
				if err == io.EOF {
					done <- nil
					return
				}
				if err != nil {
					o := outs[i].String()
					done <- fmt.Errorf("client %d after %d bytes ending %q: %w", i, len(o), o[max(0, len(o)-100):], err)
					return
				}
				if n%16 == 15 {
					time.Sleep(time.Millisecond) // let the socket fill
				}
			}
		}()
	}
	for range clients {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for i := range clients {
		out := strings.TrimPrefix(outs[i].String(), "\r\n") // the typed Enter's echo
		lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
		for j, l := range lines {
			if l != strconv.Itoa(j+1) {
				t.Fatalf("client %d: line %d is %q, want %d (output missed, repeated or reordered)", i, j, l, j+1)
			}
		}
		if len(lines) != last {
			t.Fatalf("client %d: got %d lines, want %d", i, len(lines), last)
		}
	}
}
