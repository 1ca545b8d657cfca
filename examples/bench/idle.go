package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"
)

// idleResult is the cost of one idle session.
type idleResult struct {
	heapBytes  float64 // goHeap contenders: live heap per session
	goroutines float64 // goHeap contenders: goroutines per session
	rssKiB     float64 // the contender's processes, per session
	pssKiB     float64
	procs      int // how many processes that is, in all
}

// idle creates idleSessions sessions that each print idleBytes and a
// marker, attaches to each until the marker shows, detaches, and measures
// what the idle sessions cost: for the library the growth of its daemon's
// live heap (after GC) and goroutines, for the bare PTY the bench's own;
// for every contender the RSS and PSS of its processes. The session
// programs themselves (the same for every contender) are left out.
func (b *bench) idle(ctx context.Context, c *contender) (res idleResult, err error) {
	h, err := c.open(b)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	heapOf := func() (uint64, int, error) {
		if lh, ok := h.(*libHost); ok {
			return lh.heap()
		}
		waitGoroutinesSettle(ctx)
		heap, g := liveHeap()
		return heap, g, nil
	}
	heap0, g0, err := heapOf()
	if err != nil {
		return res, err
	}
	nonce := newRunID()
	marker := func(i int) string { return fmt.Sprintf("RPTYBENCH-I%d-%s", i, nonce) }
	n := b.cfg.idleSessions
	for i := range n {
		if err := h.start(ctx, i, childCommand(b.self, "session", strconv.Itoa(b.cfg.idleBytes), marker(i))); err != nil {
			return res, err
		}
	}
	if err := b.attachAll(ctx, h, n, marker); err != nil {
		return res, err
	}
	heap1, g1, err := heapOf()
	if err != nil {
		return res, err
	}
	rss, pss, procs, err := contenderMemKiB(h.tag())
	if err != nil {
		return res, err
	}
	return idleResult{
		heapBytes:  float64(int64(heap1)-int64(heap0)) / float64(n),
		goroutines: float64(g1-g0) / float64(n),
		rssKiB:     float64(rss) / float64(n),
		pssKiB:     float64(pss) / float64(n),
		procs:      procs,
	}, nil
}

// liveHeap collects garbage and returns the live heap and goroutine count.
func liveHeap() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// waitGoroutinesSettle waits until the goroutine count has held still for
// 100 ms (detached connections' goroutines finish asynchronously), at most
// 5 s.
func waitGoroutinesSettle(ctx context.Context) {
	last, still := runtime.NumGoroutine(), 0
	deadline := time.Now().Add(5 * time.Second)
	for still < 5 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := runtime.NumGoroutine(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
}
