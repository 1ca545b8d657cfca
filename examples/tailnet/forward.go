package main

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"cdr.dev/slog/v3"
)

// forward accepts local connections on ln and joins each to a new
// connection from dial (through the tailnet), so that the unmodified CLI
// (rpty --addr) reaches an agent on the tailnet. It returns when ctx ends
// or ln fails, after every joined pair has ended.
func forward(ctx context.Context, logger slog.Logger, ln net.Listener, dial func(context.Context) (net.Conn, error)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		local, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer local.Close()
			remote, err := dial(ctx)
			if err != nil {
				// Resetting the local side makes the CLI retry, as for any drop.
				logger.Warn(ctx, "dial the agent through the tailnet", slog.Error(err))
				abort(local)
				return
			}
			defer remote.Close()
			join(ctx, local, remote)
		}()
	}
}

// join copies both ways until both directions end, passing a half-close
// on (the library tells a session's end by a clean EOF from a reset, and
// the client closes gracefully by half-closing first) and ending both
// connections when ctx ends or one direction fails.
func join(ctx context.Context, a, b net.Conn) {
	stop := context.AfterFunc(ctx, func() { _ = a.Close(); _ = b.Close() })
	defer stop()
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			// A drop on one side is passed on as a drop on the other: a
			// FIN would tell the client its session ended.
			abort(a)
			abort(b)
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
}

// abort closes c with a reset where the transport has one (TCP), so the
// peer sees a drop rather than a clean end.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
