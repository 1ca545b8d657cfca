package reconnectingpty_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
)

// An agent serves sessions on a listener it already has; a client names a
// session, runs a command and reads its output to EOF.
func Example() {
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Backend: reconnectingpty.BackendBuffered,
	})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ctx, ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	err = reconnectingpty.WriteInit(conn, reconnectingpty.Init{
		ID:      uuid.New(),
		Height:  24,
		Width:   80,
		Command: "echo hello from the pty",
	})
	if err != nil {
		panic(err)
	}
	// The command exits, so the server sends its output, then EOF.
	out, _ := io.ReadAll(conn)
	fmt.Println(strings.TrimSpace(string(out)))

	cancel()
	if err := <-served; err != nil {
		panic(err)
	}
	// Output: hello from the pty
}

// A client sends input and resizes as JSON requests after the init.
func ExampleWriteRequest() {
	var stream strings.Builder
	_ = reconnectingpty.WriteRequest(&stream, reconnectingpty.Request{Data: "ls -la\r"})
	_ = reconnectingpty.WriteRequest(&stream, reconnectingpty.Request{Height: 50, Width: 120})
	fmt.Println(stream.String())
	// Output: {"data":"ls -la\r"}{"height":50,"width":120}
}

// An operator lists the live sessions and closes one: its clients get the
// remaining output, then EOF.
func ExampleServer_Sessions() {
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{Backend: reconnectingpty.BackendBuffered})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	client, server := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- srv.ServeConn(context.Background(), server) }()
	id := uuid.New()
	if err := reconnectingpty.WriteInit(client, reconnectingpty.Init{ID: id, Command: "sleep 600"}); err != nil {
		panic(err)
	}
	output := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, client)
		output <- err
	}()

	for len(srv.Sessions()) == 0 || srv.Sessions()[0].Connections == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	s := srv.Sessions()[0]
	fmt.Println(s.ID == id, s.Command, s.Connections)

	if err := srv.CloseSession(context.Background(), id); err != nil {
		panic(err)
	}
	fmt.Println(<-output, len(srv.Sessions()))
	_ = client.Close()
	<-served
	// Output:
	// true sleep 600 1
	// <nil> 0
}
