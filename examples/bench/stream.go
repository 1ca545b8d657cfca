package main

import (
	"bytes"
	"context"
	"io"
	"time"

	"golang.org/x/xerrors"
)

// client is one attached viewer of a session, whatever the contender: a
// TCP connection to the library's server, the master of a PTY that runs a
// tmux, screen or dtach client, or the bare PTY's master itself.
type client interface {
	io.Reader
	// SetReadDeadline bounds the reads that follow.
	SetReadDeadline(t time.Time) error
	// send types p into the session.
	send(p []byte) error
	// Close detaches the client (and waits for its process, if it has one).
	Close() error
}

// readBufSize is the size of every read the bench makes of a client: the
// same 32 KiB for every contender, as for the bare PTY.
const readBufSize = 32 << 10

// readUntil reads c until want has appeared in what this call read (a
// match may straddle two reads) and returns how many bytes it read. It
// fails when the deadline passes first, ctx ends or the stream ends.
func readUntil(ctx context.Context, c client, want []byte, deadline time.Time, buf []byte) (int64, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return 0, xerrors.Errorf("set read deadline: %w", err)
	}
	defer interruptOnDone(ctx, c)()
	keep := len(want) - 1
	// tail holds the last keep bytes read; probe joins it to the start of
	// the next read, to find a match across the boundary.
	tail := make([]byte, 0, keep)
	probe := make([]byte, 0, 2*keep)
	var n int64
	for {
		m, err := c.Read(buf)
		if m > 0 {
			n += int64(m)
			chunk := buf[:m]
			if bytes.Contains(chunk, want) {
				return n, nil
			}
			if len(tail) > 0 {
				probe = append(append(probe[:0], tail...), chunk[:min(keep, m)]...)
				if bytes.Contains(probe, want) {
					return n, nil
				}
			}
			tail = keepLast(tail, chunk, keep)
		}
		if err != nil {
			return n, xerrors.Errorf("read %d bytes without seeing %q (last bytes %q): %w", n, want, tail, err)
		}
	}
}

// keepLast returns the last k bytes of tail followed by chunk, in tail's
// storage.
func keepLast(tail, chunk []byte, k int) []byte {
	if len(chunk) >= k {
		return append(tail[:0], chunk[len(chunk)-k:]...)
	}
	tail = append(tail, chunk...)
	if drop := len(tail) - k; drop > 0 {
		copy(tail, tail[drop:])
		tail = tail[:k]
	}
	return tail
}

// readUntilShown reads c until the character want is displayed: it skips
// control characters and escape sequences, so a multiplexer's cursor
// movements (ESC [ ? 25 h ends in "h") cannot pass for the echo.
func readUntilShown(ctx context.Context, c client, want byte, sc *textScanner, deadline time.Time, buf []byte) error {
	if err := c.SetReadDeadline(deadline); err != nil {
		return xerrors.Errorf("set read deadline: %w", err)
	}
	defer interruptOnDone(ctx, c)()
	for {
		m, err := c.Read(buf)
		if m > 0 && sc.shows(buf[:m], want) {
			return nil
		}
		if err != nil {
			return xerrors.Errorf("read without seeing %q: %w", want, err)
		}
	}
}

// interruptOnDone makes c's pending read return when ctx ends (Ctrl-C), so
// that the bench can tear its hosts down; it returns the function that
// stops watching.
func interruptOnDone(ctx context.Context, c client) func() {
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	return func() { stop() }
}

// textScanner follows a terminal output stream through escape sequences,
// across reads, to tell the characters a terminal would display.
type textScanner struct{ state scanState }

type scanState uint8

const (
	ground   scanState = iota
	escape             // after ESC
	escInter           // after ESC and an intermediate byte
	csi                // ESC [ ... final byte
	str                // OSC, DCS, APC, PM, SOS: up to BEL or ESC \
	strEsc             // ESC inside a string
)

// shows feeds p and reports whether want was displayed in it. It scans all
// of p even after a match, so the state is right for the next read.
func (s *textScanner) shows(p []byte, want byte) bool {
	seen := false
	for _, b := range p {
		switch s.state {
		case ground:
			switch {
			case b == 0x1b:
				s.state = escape
			case b == want:
				seen = true
			}
		case escape:
			switch {
			case b == '[':
				s.state = csi
			case b == ']' || b == 'P' || b == '_' || b == '^' || b == 'X':
				s.state = str
			case b >= 0x20 && b <= 0x2f:
				s.state = escInter
			default:
				s.state = ground
			}
		case escInter:
			if b >= 0x30 && b <= 0x7e {
				s.state = ground
			}
		case csi:
			if b >= 0x40 && b <= 0x7e {
				s.state = ground
			}
		case str:
			switch b {
			case 0x07:
				s.state = ground
			case 0x1b:
				s.state = strEsc
			}
		case strEsc:
			if b == '\\' {
				s.state = ground
			} else {
				s.state = str
			}
		}
	}
	return seen
}
