package client_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
)

// Example runs a shell through an in-process server on a loopback
// listener, types a command, and reads until the session ends.
func Example() {
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:   reconnectingpty.BackendBuffered,
	})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ctx, ln) }()
	defer func() {
		stop()
		<-served
	}()

	dial := func(ctx context.Context) (net.Conn, error) {
		// For a real network, enable TCP keepalive here so that a dead
		// peer shows up as a read error and triggers a reconnect.
		d := net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true}}
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	c, err := client.Dial(ctx, dial, reconnectingpty.Init{
		Height:  24,
		Width:   80,
		Command: "bash --norc --noprofile",
	}, client.Options{
		OnState: func(ev client.Event) {
			if ev.State == client.StateClosed {
				fmt.Println("state:", ev.State, "-", ev.Err)
			}
		},
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	if _, err := io.WriteString(c, "echo result=$((6*7)); exit\r"); err != nil {
		panic(err)
	}
	// Read until the session ends. The output is raw terminal output:
	// the echo of the typed line (which shows "$((6*7))", not 42), prompts,
	// escape sequences, and carriage returns.
	lines := bufio.NewScanner(c)
	for lines.Scan() {
		line := lines.Text()
		if i := strings.LastIndexByte(line, '\r'); i >= 0 {
			line = line[i+1:]
		}
		if strings.HasPrefix(line, "result=") {
			fmt.Println(line)
		}
	}
	fmt.Println("read error:", lines.Err())
	// Output:
	// result=42
	// state: closed - reconnecting pty session ended
	// read error: <nil>
}
