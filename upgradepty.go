package reconnectingpty

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// This file is what an upgrade does to one in-process session: hold its
// reader still between two chunks, take its state, and let it go on if
// the exec fails.

// readerPause is an upgrade's hold on a session's PTY reader.
type readerPause struct {
	parked chan struct{} // closed by the reader once it holds still
	resume chan struct{} // closed to let it go on
}

// quiesce asks the reader to stop at the next chunk boundary and waits
// until it has (or has ended): from then on everything it read has
// reached the ring, the queues and the greeting, and the rest of the
// output waits in the PTY. resume undoes it.
func (ps *ptySession) quiesce(ctx context.Context) (*readerPause, error) {
	p := &readerPause{parked: make(chan struct{}), resume: make(chan struct{})}
	ps.pause.Store(p)
	// Wakes a reader waiting for output, for room, or for its release.
	_ = ps.ptmx.SetReadDeadline(time.Unix(1, 0))
	select {
	case ps.kick <- struct{}{}:
	default:
	}
	ps.signalDrained()
	select {
	case <-p.parked:
		return p, nil
	case <-ps.readerDone:
		return p, nil
	case <-ctx.Done():
		ps.resume(p)
		return nil, xerrors.Errorf("stop reading the pty of process %d: %w", ps.proc.Pid, ctx.Err())
	}
}

// resume lets a quiesced reader go on.
func (ps *ptySession) resume(p *readerPause) {
	ps.pause.Store(nil)
	_ = ps.ptmx.SetReadDeadline(time.Time{})
	close(p.resume)
}

// parkIfPaused holds the reader while an upgrade has paused it.
func (ps *ptySession) parkIfPaused() {
	p := ps.pause.Load()
	if p == nil {
		return
	}
	close(p.parked)
	<-p.resume
}

// closing reports the reason the session was asked to close for, if it
// was.
func (ps *ptySession) closing() (disconnect, bool) {
	select {
	case <-ps.closeReq:
		return ps.closeWhy, true
	default:
		return disconnect{}, false
	}
}

// ptyState is what a handed-over in-process session needs besides its
// descriptor: its output so far and its terminal. The reader is quiesced.
// The ring's bytes are held, oldest first: its own memory, which stays
// as it is while the reader is quiesced.
func (ps *ptySession) state() (ring ringState, held [2][]byte, vt *vtState, ended bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.ending {
		return ringState{}, held, nil, true
	}
	ring = ringState{Total: ps.ring.written()}
	held = ps.ring.heldParts()
	if g, ok := ps.greeting.(*vtGreeting); ok {
		vt = g.state(nil)
	}
	return ring, held, vt, false
}

// heldParts returns the held bytes as they lie in the ring, oldest first:
// not copies.
func (r *replayRing) heldParts() [2][]byte {
	if !r.full {
		return [2][]byte{r.buf}
	}
	return [2][]byte{r.buf[r.pos:], r.buf[:r.pos]}
}

// setInheritable makes f's descriptor survive exec (on) or not, and
// returns its number. (File.Fd would make a pollable file blocking.)
func setInheritable(f *os.File, on bool) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, xerrors.Errorf("descriptor of %s: %w", f.Name(), err)
	}
	var opErr error
	num := -1
	if err := rc.Control(func(fd uintptr) {
		num = int(fd)
		flags, err := unix.FcntlInt(fd, unix.F_GETFD, 0)
		if err != nil {
			opErr = err
			return
		}
		if on {
			flags &^= unix.FD_CLOEXEC
		} else {
			flags |= unix.FD_CLOEXEC
		}
		_, opErr = unix.FcntlInt(fd, unix.F_SETFD, flags)
	}); err != nil {
		return -1, xerrors.Errorf("descriptor of %s: %w", f.Name(), err)
	}
	if opErr != nil {
		return -1, xerrors.Errorf("set close-on-exec of %s: %w", f.Name(), opErr)
	}
	return num, nil
}
