package main

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/xerrors"
)

// reattach fills a fresh host with live sessions that have each printed
// about reattachBytes and a marker, then times reattaches in turn: from
// dialling (or starting the tmux/screen/dtach client) until the session's
// marker is on the client's screen, which for the library is the end of
// the replay or snapshot and for the others their first full repaint.
func (b *bench) reattach(ctx context.Context, c *contender) (lat []time.Duration, err error) {
	h, err := c.open(b)
	if err != nil {
		return nil, err
	}
	defer closeHost(h, &err)
	nonce := newRunID()
	marker := func(i int) string { return fmt.Sprintf("RPTYBENCH-S%d-%s", i, nonce) }
	buf := make([]byte, readBufSize)
	n := b.cfg.reattachSessions
	for i := range n {
		if err := h.start(ctx, i, childCommand(b.self, "session", strconv.Itoa(b.cfg.reattachBytes), marker(i))); err != nil {
			return nil, err
		}
	}
	// The first attach creates the library's sessions and shows that
	// every session has printed its output.
	if err := b.attachAll(ctx, h, n, marker); err != nil {
		return nil, err
	}
	// The relay's CPU per reattach (the daemon, or tmux's server and
	// client...) is logged beside the latencies: unlike them, it does not
	// move with the machine's load.
	if lh, ok := h.(*libHost); ok && b.trace != nil {
		if _, err := lh.daemon.ask("trace"); err != nil {
			return nil, err
		}
	}
	cpu0 := cpuSeconds(h.tag(), true)
	for k := range b.cfg.reattachSamples {
		i := k % n
		start, mono := time.Now(), monoNow()
		cl, err := h.attach(ctx, i)
		if err != nil {
			return nil, xerrors.Errorf("reattach %d: %w", i, err)
		}
		_, err = readUntil(ctx, cl, []byte(marker(i)), b.deadline(), buf)
		d := time.Since(start)
		b.trace.sample(c.key, mono, monoNow())
		_ = cl.Close()
		if err != nil {
			return nil, xerrors.Errorf("reattach %d: %w", i, err)
		}
		lat = append(lat, d)
		if err := h.settle(ctx); err != nil {
			return nil, err
		}
	}
	b.logf("reattach %s: relay CPU %.3f ms per reattach", c.key, cpuSeconds(h.tag(), false).sub(cpu0).relay*1e3/float64(b.cfg.reattachSamples))
	return lat, nil
}

// attachAll attaches once to each of n sessions, waits for its marker and
// detaches. It is set-up, not measured, so it runs a few sessions at once.
func (b *bench) attachAll(ctx context.Context, h host, n int, marker func(int) string) error {
	const workers = 4
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, readBufSize)
			for i := range next {
				if err := b.attachOnce(ctx, h, i, marker(i), buf); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	for e := range errs {
		err = cmp.Or(err, e)
	}
	if err != nil {
		return err
	}
	return h.settle(ctx)
}

// attachOnce attaches to session i until its marker shows, then detaches.
// Being set-up, it may try again: a multiplexer attached while its session
// is still printing can leave a client without its final repaint (seen with
// tmux on a loaded machine: the client got its terminal set-up and nothing
// more for a minute), and a second client gets a fresh one. A session that
// never shows its marker still fails, after the last try.
func (b *bench) attachOnce(ctx context.Context, h host, i int, marker string, buf []byte) error {
	const tries = 3
	var err error
	for try := 1; try <= tries; try++ {
		deadline := b.deadline()
		if try < tries {
			deadline = minTime(deadline, time.Now().Add(firstAttachPatience))
		}
		var cl client
		cl, err = h.attach(ctx, i)
		if err != nil {
			return xerrors.Errorf("first attach %d: %w", i, err)
		}
		_, err = readUntil(ctx, cl, []byte(marker), deadline, buf)
		_ = cl.Close()
		if err == nil || ctx.Err() != nil {
			break
		}
		b.logf("first attach %d, try %d of %d: %v", i, try, tries, err)
	}
	if err != nil {
		return xerrors.Errorf("first attach %d: %w", i, err)
	}
	return nil
}

// firstAttachPatience is how long a set-up attach waits for its marker
// before it tries a fresh client.
const firstAttachPatience = 10 * time.Second

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
