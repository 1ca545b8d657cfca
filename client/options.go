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
	// do not redial in step. Defaults: 100 ms and 10 s.
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
	// MaxPendingInput bounds the input held while disconnected; Write
	// blocks while it is full. Default: 1 MiB.
	MaxPendingInput int
}

func (o Options) withDefaults() Options {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
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
	return o
}
