//go:build linux

package client_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
	"github.com/reconnectingpty/reconnectingpty/internal/netnstest"
)

// linkFlapBackoff is the redial interval in TestRedialOnNetworkChange:
// long, so that a redial on the network's signal stands out from one on
// the timer (which waits 4-8 s).
const linkFlapBackoff = 8 * time.Second

// TestRedialOnNetworkChange cuts a session's path in a network namespace of
// the test's own, as a laptop leaving its Wi-Fi: a link goes down and the
// server port's packets are dropped (nftables; pure silence). The client
// finds the connection dead by its heartbeat and starts to reconnect. Then
// the path returns and the link comes up again. With rtnetlink watched in
// that namespace the client redials at once on the link's return and
// output is back within 1 s, although its redial interval is 4-8 s;
// without the watch it waits that interval out, which shows the signal is
// what brought it back.
func TestRedialOnNetworkChange(t *testing.T) {
	if why := netnstest.Available(); why != "" {
		t.Skip(why)
	}
	t.Run("watched", func(t *testing.T) {
		if live := linkFlap(t, true); live > time.Second {
			t.Errorf("output back %s after the link came up, want within 1 s (the redial interval is %s)", live, linkFlapBackoff)
		}
	})
	t.Run("not watched", func(t *testing.T) {
		if live := linkFlap(t, false); live < 2*time.Second {
			t.Errorf("output back %s after the link came up without the watch, want the redial interval waited out (4-8 s): the test does not show the signal's effect", live)
		}
	})
}

// linkFlap returns how long after the link came up output was back.
func linkFlap(t *testing.T, watch bool) time.Duration {
	ns := netnstest.New(t)
	if err := ns.Run("ip", "link", "add", "rpty0", "type", "veth", "peer", "name", "rpty1"); err != nil {
		if strings.Contains(err.Error(), "Unknown device type") || strings.Contains(err.Error(), "not supported") {
			t.Skipf("needs veth links (kernel module veth): %v", err)
		}
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"ip", "link", "set", "rpty1", "up"},
		{"ip", "link", "set", "rpty0", "up"},
	} {
		if err := ns.Run(args...); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{
		Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"},
		Backend:   reconnectingpty.BackendBuffered,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	reconnecting := make(chan struct{}, 100)
	opts := client.Options{
		MinBackoff: linkFlapBackoff,
		MaxBackoff: linkFlapBackoff,
		OnState: func(ev client.Event) {
			if ev.State == client.StateReconnecting {
				reconnecting <- struct{}{}
			}
		},
	}
	if watch {
		// The client's rtnetlink socket opened inside the namespace.
		client.SetNetworkWatch(&opts, func() (changed <-chan struct{}, stop func(), err error) {
			if nerr := ns.Do(func() { changed, stop, err = client.WatchNetwork() }); nerr != nil {
				return nil, nil, nerr
			}
			return changed, stop, err
		})
	} else {
		opts.DisableNetworkWatch = true
	}
	addr := ln.Addr().String()
	dctx, dcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer dcancel()
	c, err := client.Dial(dctx, func(ctx context.Context) (net.Conn, error) { return ns.Dial(ctx, addr) },
		reconnectingpty.Init{Height: 24, Width: 80, Command: outageProgram, BackendType: string(reconnectingpty.BackendBuffered)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	defer closeClient(t, c, out)
	out.waitFor(t, "tick 20\r\n")

	port := ln.Addr().(*net.TCPAddr).Port
	if err := ns.Run("ip", "link", "set", "rpty0", "down"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Block(port); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	select {
	case <-reconnecting:
		t.Logf("reconnecting %s after the path went silent", time.Since(down).Round(10*time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not notice the dead path within 10 s")
	}
	time.Sleep(500 * time.Millisecond)
	before := len(tickRE.FindAllString(out.String(), -1))
	if err := ns.Unblock(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Run("ip", "link", "set", "rpty0", "up"); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	deadline := up.Add(3 * linkFlapBackoff)
	for len(tickRE.FindAllString(out.String(), -1)) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no output %s after the link came up", time.Since(up))
		}
		time.Sleep(5 * time.Millisecond)
	}
	live := time.Since(up)
	t.Logf("watch %v: output back %s after the link came up", watch, live.Round(time.Millisecond))
	return live
}

// TestNetworkWatchEndsWithClose: the rtnetlink watch a reconnecting client
// holds is closed, and its goroutine waited for, when the client is closed
// in the middle of reconnecting (leakcheck then finds nothing left).
func TestNetworkWatchEndsWithClose(t *testing.T) {
	pd := newPipeDialer(t)
	var mu sync.Mutex
	var first net.Conn
	opened, stopped := 0, 0
	reconnecting := make(chan struct{}, 10)
	opts := client.Options{
		MinBackoff: time.Minute,
		MaxBackoff: time.Minute,
		OnState: func(ev client.Event) {
			if ev.State == client.StateReconnecting {
				reconnecting <- struct{}{}
			}
		},
	}
	client.SetNetworkWatch(&opts, func() (<-chan struct{}, func(), error) {
		changed, stop, err := client.WatchNetwork()
		if err != nil {
			return nil, nil, err
		}
		mu.Lock()
		opened++
		mu.Unlock()
		return changed, func() {
			stop()
			mu.Lock()
			stopped++
			mu.Unlock()
		}, nil
	})
	dial := func(ctx context.Context) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil {
			return nil, xerrors.New("no more connections")
		}
		c, err := pd.dial(ctx)
		first = c
		return c, err
	}
	c, err := client.Dial(context.Background(), dial, reconnectingpty.Init{Height: 24, Width: 80, Command: shellCommand}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := readOutput(c)
	mu.Lock()
	_ = first.Close()
	mu.Unlock()
	select {
	case <-reconnecting:
	case <-time.After(waitTimeout):
		t.Fatal("the client did not start to reconnect")
	}
	closeClient(t, c, out)
	mu.Lock()
	defer mu.Unlock()
	if opened != 1 || stopped != 1 {
		t.Errorf("network watch opened %d times and stopped %d times, want once each", opened, stopped)
	}
}
