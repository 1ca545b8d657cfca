package rptytest

import (
	"net"
	"sync"
	"testing"
	"time"
)

// DelayProxy forwards TCP connections to target, holding every chunk for
// a fixed one-way delay in each direction (order kept), so a connection
// through it has a round trip of twice that: a far-away server on
// loopback.
type DelayProxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

// NewDelayProxy listens on a loopback port and forwards each connection
// to target with rtt/2 of delay each way; it is closed, its goroutines
// waited for, when the test ends.
func NewDelayProxy(t testing.TB, target string, rtt time.Duration) *DelayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &DelayProxy{ln: ln, target: target, oneWay: rtt / 2}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				_ = a.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, a, b)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(a, b)
			go p.pipe(b, a)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address, host:port.
func (p *DelayProxy) Addr() string { return p.ln.Addr().String() }

// pipe copies src to dst, each chunk written oneWay after it was read.
func (p *DelayProxy) pipe(src, dst net.Conn) {
	defer p.wg.Done()
	type chunk struct {
		data []byte
		due  time.Time
	}
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.data); err != nil {
				_ = src.Close()
				for range q {
				}
				return
			}
		}
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(p.oneWay)}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}
