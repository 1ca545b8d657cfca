package client

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/reconnectingpty/reconnectingpty/internal/link"
)

// LinkStatus is what the link extension (docs/PROTOCOL.md) tells a Client
// about its connection and its input.
type LinkStatus struct {
	// Active says the current connection's server has the extension.
	Active bool
	// RTT is the round trip of the latest answered heartbeat; 0 before
	// the first.
	RTT time.Duration
	// InputSent is how many bytes of input the Client has sent (its input
	// offset), and InputTaken how many of them the server says the
	// program has taken. Input sent and not taken is resent after a
	// reconnect.
	InputSent, InputTaken uint64
}

// linkMode is what a connection's first bytes said about the extension.
type linkMode int

const (
	linkUndecided linkMode = iota
	linkOn
	linkOff
)

// newLinkID is a client's link ID: random, so that no program's output
// matches its frames.
func newLinkID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Link reports the link extension's view of the Client.
func (c *Client) Link() LinkStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return LinkStatus{
		Active:     c.link == linkOn,
		RTT:        c.rtt,
		InputSent:  c.ackedOff + uint64(c.resendFrom),
		InputTaken: c.ackedOff,
	}
}

// linkExpected reports whether the last server that said had the
// extension.
func (c *Client) linkExpected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.linkKnown
}

// decideLink records what the connection's first bytes said. A server
// without the extension never acknowledges: what it was sent is forgotten,
// as it always was (at most once).
func (c *Client) decideLink(m linkMode) {
	c.mu.Lock()
	c.link = m
	if m == linkOn {
		c.linkKnown = true
	} else {
		c.linkKnown = false
		c.ackedOff += uint64(len(c.unacked))
		c.unacked, c.resendFrom = nil, 0
		c.space.Broadcast()
	}
	c.mu.Unlock()
	c.signal()
}

// applyFrame takes in a frame: input the program took is no longer kept,
// and an answered heartbeat gives the round trip.
func (c *Client) applyFrame(f link.Frame, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.In > c.ackedOff {
		// Only what this connection was sent: its bytes must run on
		// from its init's InputOffset, so input the server took on an
		// earlier one is sent again all the same (and dropped there).
		k := min(f.In-c.ackedOff, uint64(c.resendFrom))
		c.unacked = c.unacked[k:]
		if len(c.unacked) == 0 {
			c.unacked = nil
		}
		c.resendFrom = max(c.resendFrom-int(k), 0)
		c.ackedOff += k
		c.space.Broadcast()
	}
	if f.HasPong {
		if sent, ok := c.pings[f.Pong]; ok {
			c.rtt = now.Sub(sent)
		}
		for seq := range c.pings {
			if seq <= f.Pong {
				delete(c.pings, seq)
			}
		}
	}
}

// prepareResend is called before a redial: with a server that has the
// extension, input not acknowledged is sent again from where the program's
// input stands; without it, it is forgotten.
func (c *Client) prepareResend() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.link = linkUndecided
	c.pings = nil
	if c.linkKnown {
		c.resendFrom = 0
		return
	}
	c.ackedOff += uint64(len(c.unacked))
	c.unacked, c.resendFrom = nil, 0
	c.space.Broadcast()
}

// sanitize is data as the server decodes it: encoding/json sends each
// byte of invalid UTF-8 as U+FFFD, and input offsets count what the
// server decodes.
func sanitize(data []byte) []byte {
	if utf8.Valid(data) {
		return data
	}
	out := make([]byte, 0, len(data)+8)
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, data[:size]...)
		}
		data = data[size:]
	}
	return out
}

// tuneTCP makes the kernel report a dead link on a TCP connection within
// about timeout: keepalive probes after a little silence, and
// TCP_USER_TIMEOUT for input sent and not acknowledged. It covers servers
// without the link extension, whose silence a client cannot tell from an
// idle terminal.
func tuneTCP(nc net.Conn, timeout time.Duration) {
	tc, ok := nc.(*net.TCPConn)
	if !ok || timeout <= 0 {
		return
	}
	idle := max(timeout*2/5, time.Second)
	interval := max((timeout-idle)/3, 500*time.Millisecond)
	_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: idle, Interval: interval, Count: 3})
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(timeout.Milliseconds()))
	})
}

// linkStream is one connection's output as the link extension sees it:
// whether the server has the extension (its first bytes say), and its
// frames, which it takes out.
type linkStream struct {
	mode     linkMode
	prefix   []byte
	lead     []byte // the first bytes, while they may start a frame
	stripper *link.Stripper
}

func newLinkStream(id string) *linkStream {
	return &linkStream{prefix: link.Prefix(id), stripper: link.NewStripper(id)}
}

func (ls *linkStream) decide(c *Client, m linkMode) {
	ls.mode = m
	c.decideLink(m)
}

// strip returns the output in p, without the frames, which it applies to
// c. last says that the connection ended.
func (ls *linkStream) strip(c *Client, p []byte, last bool) ([]byte, error) {
	if ls.mode == linkUndecided {
		p, ls.lead = append(ls.lead, p...), nil
		n := min(len(p), len(ls.prefix))
		switch {
		case !bytes.Equal(p[:n], ls.prefix[:n]):
			ls.decide(c, linkOff)
		case n == len(ls.prefix):
			ls.decide(c, linkOn)
		case last:
			// Cut off inside the first frame: that says nothing about
			// the server, and is no output.
			return nil, nil
		default:
			ls.lead = p
			return nil, nil
		}
	} else if len(ls.lead) > 0 {
		// Decided by silence while holding the start of a frame.
		p, ls.lead = append(ls.lead, p...), nil
	}
	if ls.mode == linkOff {
		return p, nil
	}
	out, frames, err := ls.stripper.Strip(p, last)
	now := time.Now()
	for _, f := range frames {
		c.applyFrame(f, now)
	}
	return out, err
}
