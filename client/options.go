package client

import "time"

// Options tunes a Client. The zero value is usable.
type Options struct {
	// OnState is called on every state change, in order, from the
	// Client's own goroutine. It must not block for long and must not
	// call Close (Close waits for the goroutine that calls OnState).
	OnState func(Event)
	// OnReplay is called by Read, in the goroutine that called Read, just
	// before Read returns the first output of a reconnected connection to
	// a server without the resume extension. That output starts with the
	// server's replay of recent output (buffered backend) or a repaint of
	// the screen (screen backend), so it repeats what was shown before the
	// drop. A terminal can reset its screen here; calling it from Read
	// orders it with the output already written. It is also called for a
	// reset when OnReset is nil.
	OnReplay func()
	// OnReset is called by Read, like OnReplay, when the server answered a
	// resume with a reset: what Read returns next redraws the terminal's
	// current state, so the terminal should be reset first (clear the
	// screen, scrollback and modes). It may come on the first connection
	// too, when the session already had output the server no longer holds.
	OnReset func()
	// DisableResume stops the Client from asking to resume: every
	// reconnect then gets the server's replay, as with a server without
	// the extension.
	DisableResume bool
	// MinBackoff and MaxBackoff bound the delay between redials. The
	// delay doubles with every attempt in a row without output, and a
	// random half of it is taken off so that many clients cut off at once
	// do not redial in step. Defaults: 100 ms and 1 s: a client retries
	// at least every second, so it is live within about a second of a
	// network's return (docs/network.md).
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one dial plus sending the init. Default: 10 s.
	DialTimeout time.Duration
	// ReadTimeout, if positive, treats a connection that delivered no
	// output for this long as dropped (see the package comment).
	ReadTimeout time.Duration
	// MaxAttempts, if positive, is how many attempts in a row may fail
	// (a dial or init that failed, or a connection that ended without
	// output) before the Client gives up and closes. Zero retries until
	// Close.
	MaxAttempts int
	// MaxPendingInput bounds the input held while disconnected, and the
	// input sent but not yet acknowledged by a server with the link
	// extension; Write blocks while it is full. Default: 1 MiB.
	MaxPendingInput int
	// DisableLink stops the Client from asking for the link extension
	// (docs/PROTOCOL.md): no heartbeats, no acknowledged input, as with a
	// server without it.
	DisableLink bool
	// HeartbeatInterval is how often a Client on a server with the link
	// extension sends a heartbeat. Default: 1 s. At most 5 s: the server
	// closes a link connection silent for 10 s.
	HeartbeatInterval time.Duration
	// LinkTimeout is how long a connection to a server with the link
	// extension may deliver nothing (no output, no heartbeat answer)
	// before it is taken for dead and redialled. Default: 3 s.
	LinkTimeout time.Duration
	// TCPUserTimeout, for a dial function that returns a *net.TCPConn,
	// sets keepalive probes and TCP_USER_TIMEOUT so that the kernel
	// reports a dead link within about this long, for servers without the
	// link extension too (docs/network.md). Default: 5 s; -1 leaves the
	// socket alone.
	TCPUserTimeout time.Duration
	// DisableNetworkWatch stops the Client from listening, while it
	// reconnects, for the platform's signal that the network changed
	// (Linux: rtnetlink link, address and route messages), on which it
	// redials at once instead of waiting out the redial interval.
	DisableNetworkWatch bool

	// watchNetwork replaces the platform's watchNetwork, for tests that
	// watch a network namespace of their own.
	watchNetwork func() (changed <-chan struct{}, stop func(), err error)
}

func (o Options) withDefaults() Options {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.MaxPendingInput <= 0 {
		o.MaxPendingInput = 1 << 20
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = time.Second
	}
	o.HeartbeatInterval = min(o.HeartbeatInterval, 5*time.Second)
	if o.LinkTimeout <= 0 {
		o.LinkTimeout = 3 * time.Second
	}
	if o.TCPUserTimeout == 0 {
		o.TCPUserTimeout = 5 * time.Second
	}
	return o
}
