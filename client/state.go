package client

import "time"

// State is the connection state of a Client.
type State int

const (
	// StateConnected means a connection is up and the init was sent.
	StateConnected State = iota + 1
	// StateReconnecting means the connection dropped and the Client is
	// waiting to redial, or redialing.
	StateReconnecting
	// StateClosed is final: the session ended, Close was called, or the
	// Client gave up (see Options.MaxAttempts).
	StateClosed
)

// String implements fmt.Stringer.
func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Event is a state change, passed to Options.OnState.
type Event struct {
	// State is the new state.
	State State
	// Err says why: for StateReconnecting, what ended the connection or
	// failed the last attempt; for StateClosed, ErrSessionEnded, ErrClosed
	// or the error the Client gave up on. It is nil for StateConnected.
	Err error
	// Attempt counts the redials since the last connection that produced
	// output; it is 0 for the first connection.
	Attempt int
	// Delay is, for StateReconnecting, how long the Client waits before
	// the next dial.
	Delay time.Duration
}
