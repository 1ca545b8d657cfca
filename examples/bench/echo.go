package main

import (
	"context"
	"time"

	"golang.org/x/xerrors"
)

// echoWarmup keystrokes are typed before the timed ones.
const echoWarmup = 20

// echo types keystrokes one at a time into a session running `cat` on a
// raw terminal and times each until the client displays its echo.
//
// A key is a letter; every 26 keys an untimed carriage return brings the
// cursor back to the start of the line, so the screen never scrolls and a
// multiplexer never redraws old text. Lines alternate between lowercase and
// uppercase, so the awaited letter is nowhere on its line until echoed.
func (b *bench) echo(ctx context.Context, c *contender) (lat []time.Duration, err error) {
	h, err := c.open(b)
	if err != nil {
		return nil, err
	}
	defer closeHost(h, &err)
	// cat's terminal is made raw first; then one byte of input, typed
	// once the client is attached, lets the ready marker out (dtach shows
	// a client nothing printed before it attached).
	ready := "RPTYBENCH-ECHO-" + newRunID()
	cmd := "stty raw -echo && dd bs=1 count=1 of=/dev/null 2>/dev/null && printf '%s' " + ready + " && exec cat"
	if err := h.start(ctx, 0, cmd); err != nil {
		return nil, err
	}
	cl, err := h.attach(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := cl.send([]byte("\r")); err != nil {
		return nil, xerrors.Errorf("type the first key: %w", err)
	}
	buf := make([]byte, readBufSize)
	if _, err := readUntil(ctx, cl, []byte(ready), b.deadline(), buf); err != nil {
		return nil, xerrors.Errorf("wait for cat: %w", err)
	}
	sc := &textScanner{}
	for k := range echoWarmup + b.cfg.echoTrips {
		pos, pass := k%26, k/26
		if pos == 0 && k > 0 {
			if err := cl.send([]byte("\r")); err != nil {
				return nil, xerrors.Errorf("type return: %w", err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		key := byte('a' + pos)
		if pass%2 == 1 {
			key = byte('A' + pos)
		}
		start := time.Now()
		if err := cl.send([]byte{key}); err != nil {
			return nil, xerrors.Errorf("type %q: %w", key, err)
		}
		if err := readUntilShown(ctx, cl, key, sc, b.deadline(), buf); err != nil {
			return nil, xerrors.Errorf("keystroke %d: %w", k, err)
		}
		if k >= echoWarmup {
			lat = append(lat, time.Since(start))
		}
	}
	return lat, ctx.Err()
}
