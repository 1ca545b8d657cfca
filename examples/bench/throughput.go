package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/xerrors"
)

// tpCase is one row of the throughput table.
type tpCase struct {
	c       *contender
	clients int // clients reading; the figure is the slowest one's
	stalled int // clients that attach and then never read again
}

func (tc tpCase) name() string {
	switch {
	case tc.stalled > 0:
		return fmt.Sprintf("%s, %d clients + %d stalled (slowest)", tc.c.label, tc.clients, tc.stalled)
	case tc.clients > 1:
		return fmt.Sprintf("%s, %d clients (slowest)", tc.c.label, tc.clients)
	}
	return tc.c.label
}

// tpCases are the throughput rows for the contenders that can run.
func tpCases(cs []*contender) []tpCase {
	var out []tpCase
	for _, c := range cs {
		out = append(out, tpCase{c: c, clients: 1})
	}
	for _, c := range cs {
		if c.key == "buffered" || c.key == "vt" {
			out = append(out, tpCase{c: c, clients: 10}, tpCase{c: c, clients: 10, stalled: 1})
		}
	}
	return out
}

// tpResult is one measurement of a throughput case.
type tpResult struct {
	secs        float64 // start keystroke to end marker seen by the slowest client
	cpu         float64 // CPU seconds of every process involved, meanwhile
	writerCPU   float64 // of which the writer's
	clientBytes int64   // bytes that slowest client received
	relayCPU    float64 // CPU seconds of the contender's own processes (see cpuSample)
}

// throughput runs the writer in a fresh session of the case's contender
// with every client attached and waiting, types the start line, and times
// how long until each reading client has seen the writer's end marker.
// The end marker is what a person watching would wait for, so a
// multiplexer that redraws the screen instead of relaying every byte is
// timed the same way as one that relays.
func (b *bench) throughput(ctx context.Context, tc tpCase) (res tpResult, err error) {
	h, err := tc.c.open(b)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	nonce := newRunID()
	ready, end := "RPTYBENCH-READY-"+nonce, "RPTYBENCH-END-"+nonce
	if err := h.start(ctx, 0, childCommand(b.self, "writer", strconv.FormatInt(b.cfg.bytes, 10), ready, end)); err != nil {
		return res, err
	}
	var clients []client
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	buf := make([]byte, readBufSize)
	for k := range tc.clients + tc.stalled {
		c, err := h.attach(ctx, 0)
		if err != nil {
			return res, xerrors.Errorf("attach: %w", err)
		}
		clients = append(clients, c)
		// The writer prints its ready marker once a client is there;
		// the others see it in the replay.
		if k == 0 {
			if err := c.send([]byte("\r")); err != nil {
				return res, xerrors.Errorf("type the first line: %w", err)
			}
		}
		if _, err := readUntil(ctx, c, []byte(ready), b.deadline(), buf); err != nil {
			return res, xerrors.Errorf("wait for the writer to be ready: %w", err)
		}
	}

	cpu0 := cpuSeconds(h.tag(), true)
	took := make([]time.Duration, tc.clients)
	got := make([]int64, tc.clients)
	errs := make([]error, tc.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range tc.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = readUntil(ctx, clients[i], []byte(end), b.deadline(), make([]byte, readBufSize))
			took[i] = time.Since(start)
		}()
	}
	sendErr := clients[0].send([]byte("\r"))
	if sendErr != nil {
		// Nothing will come: stop the readers now.
		for _, c := range clients[:tc.clients] {
			_ = c.SetReadDeadline(time.Now())
		}
	}
	wg.Wait()
	// The relay's time is read while its clients are alive: a client
	// process's time would otherwise move into the bench's once reaped.
	relay := cpuSeconds(h.tag(), false).sub(cpu0).relay
	if sendErr != nil {
		return res, xerrors.Errorf("type the start line: %w", sendErr)
	}
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	slowest := 0
	for i := range took {
		if took[i] > took[slowest] {
			slowest = i
		}
	}
	for _, c := range clients {
		_ = c.Close()
	}
	clients = nil
	if err := h.settle(ctx); err != nil {
		return res, err
	}
	cpu := cpuSeconds(h.tag(), false).sub(cpu0)
	return tpResult{secs: took[slowest].Seconds(), cpu: cpu.all, writerCPU: cpu.programs, clientBytes: got[slowest], relayCPU: relay}, nil
}

// closeHost closes h, reporting its error unless an earlier one is set.
func closeHost(h host, err *error) {
	if cerr := h.close(); cerr != nil && *err == nil {
		*err = xerrors.Errorf("close host: %w", cerr)
	}
}
