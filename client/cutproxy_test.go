package client_test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// cutMode is how cutProxy breaks a connection.
type cutMode int

const (
	// cutReset resets both sides, as a crashed middlebox does.
	cutReset cutMode = iota
	// cutHangUp closes the server's side cleanly (it sees the client
	// leave) and resets the client's.
	cutHangUp
	// cutSilence stops forwarding in both directions and keeps both
	// sockets open: nothing errors, packets just stop.
	cutSilence
)

func (m cutMode) String() string {
	return [...]string{"reset", "hang-up", "silence"}[m]
}

// cutProxy forwards loopback TCP connections to a server and breaks them
// on demand.
type cutProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	pairs []*proxyPair
}

type proxyPair struct {
	client, server net.Conn
	silent         atomic.Bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, pr := range p.pairs {
			rptytest.ResetConn(pr.client)
			rptytest.ResetConn(pr.server)
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			rptytest.ResetConn(c)
			continue
		}
		pr := &proxyPair{client: c, server: s}
		p.mu.Lock()
		p.pairs = append(p.pairs, pr)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.forward(pr, c, s)
		go p.forward(pr, s, c)
	}
}

// forward copies from src to dst; a silent pair's bytes are dropped, as
// a network that stopped forwarding never delivers them.
func (p *cutProxy) forward(pr *proxyPair, src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pr.silent.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF && !pr.silent.Load() {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
			}
			return
		}
	}
}

// cut breaks every live connection.
func (p *cutProxy) cut(mode cutMode) {
	p.mu.Lock()
	pairs := p.pairs
	p.pairs = nil
	p.mu.Unlock()
	for _, pr := range pairs {
		switch mode {
		case cutReset:
			rptytest.ResetConn(pr.client)
			rptytest.ResetConn(pr.server)
		case cutHangUp:
			_ = pr.server.Close()
			rptytest.ResetConn(pr.client)
		case cutSilence:
			pr.silent.Store(true)
			// Kept open until the test ends: the ends must notice on
			// their own.
			p.mu.Lock()
			p.pairs = append(p.pairs, pr)
			p.mu.Unlock()
		}
	}
}
