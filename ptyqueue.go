package reconnectingpty

import (
	"bytes"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// ptyAttachment is one connection's bounded output queue on a ptySession
// and the goroutine that drains it.
type ptyAttachment struct {
	ps    *ptySession
	c     *conn
	input *os.File // the PTY, for this connection's input
	// queueSize bounds pending: past it (plus the first bytes, which a
	// large snapshot may fill on its own) the connection is cut off.
	queueSize int
	firstLen  int
	// firstLeft is how many of the first bytes are yet to be written, and
	// lent the greeting's buffer (Server.greetBuf) to give back then.
	// Only the writer touches them (or writeFirst, before it starts).
	firstLeft int
	lent      []byte

	mu      sync.Mutex
	queue   [][]byte
	pending int  // bytes queued or being written
	final   bool // the session ended: flush, then end the output
	dead    bool // detached or cut off: stop at once

	// raw, for a TCP or Unix connection, lets the reader write output
	// straight to the socket while nothing is queued (writeNow).
	raw syscall.RawConn

	out        net.Buffers // being written; only the writer touches it
	wake       chan struct{}
	writerDone chan struct{}
}

// enqueue adds chunk unless that would put more than queueSize bytes of
// live output behind; it returns the backlog, and false when the
// connection must be cut off.
func (a *ptyAttachment) enqueue(chunk []byte) (backlog int, ok bool) {
	a.mu.Lock()
	if a.pending+len(chunk) > a.queueSize+a.firstLen {
		backlog = a.pending
		a.mu.Unlock()
		return backlog, false
	}
	a.queue = append(a.queue, chunk)
	a.pending += len(chunk)
	backlog = a.pending
	a.mu.Unlock()
	a.signal()
	return backlog, true
}

// claim reserves the connection for the reader to write n bytes to it
// itself (writeNow), which it may when nothing is queued or being written.
// A client that keeps up then costs no wake-up of its writer, and the
// reader writes to a socket with room at once (BenchmarkDirectWrites
// measures the difference). claim reports false when the chunk must be
// queued.
func (a *ptyAttachment) claim(n int) bool {
	if a.raw == nil || a.ps.srv.queueAllOutput {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending != 0 || a.final || a.dead {
		return false
	}
	a.pending = n
	return true
}

// writeNow writes a claimed chunk without waiting: what the socket does
// not take at once is copied and queued for the writer, as is everything
// on an error, which the writer then meets and reports.
func (a *ptyAttachment) writeNow(chunk []byte) {
	n := 0
	_ = a.raw.Write(func(fd uintptr) bool {
		for n < len(chunk) {
			m, err := unix.Write(int(fd), chunk[n:])
			if err == unix.EINTR {
				continue
			}
			if err != nil || m <= 0 {
				break
			}
			n += m
		}
		return true // never wait: the writer does
	})
	var rest []byte
	if n < len(chunk) {
		rest = bytes.Clone(chunk[n:])
	}
	a.mu.Lock()
	a.pending -= n
	if rest != nil {
		a.queue = append(a.queue, rest)
	}
	a.mu.Unlock()
	if rest != nil {
		a.signal()
	}
}

// behind reports whether the connection is far enough behind to pace the
// program for.
func (a *ptyAttachment) behind() bool { return a.backlog() >= a.pauseAt() }

// pauseAt is the backlog at which the connection counts as behind: a
// quarter of its queue.
func (a *ptyAttachment) pauseAt() int { return a.queueSize / 4 }

// backlog is how many bytes of output the connection has yet to take.
func (a *ptyAttachment) backlog() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending
}

func (a *ptyAttachment) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// finish ends the connection with d once the queued output is written.
func (a *ptyAttachment) finish(d disconnect) {
	a.c.end(d)
	// Input is over too: a write waiting for the ended program gives up.
	_ = a.input.SetWriteDeadline(time.Unix(1, 0))
	a.mu.Lock()
	a.final = true
	a.mu.Unlock()
	a.signal()
}

// writeFirst writes the first bytes (the greeting) straight to the socket
// on the attaching goroutine, as much as the socket takes without waiting;
// the writer, started next, writes the rest. A reattach then costs no
// hand-over to another goroutine before its first byte leaves, and the
// greeting leaves while the snapshot just drawn is in the CPU's cache.
// Output the reader queues meanwhile goes behind the first bytes, and the
// reader does not write itself while they are pending (claim).
func (a *ptyAttachment) writeFirst() {
	if a.raw == nil || a.ps.srv.queueAllOutput {
		return
	}
	a.mu.Lock()
	bufs := a.queue
	a.queue = nil
	a.mu.Unlock()
	if len(bufs) == 0 {
		return
	}
	n := 0
	_ = a.raw.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			m, err := unix.Writev(int(fd), bufs)
			if err == unix.EINTR {
				continue
			}
			if err != nil || m <= 0 {
				break
			}
			n += m
			bufs = consumed(bufs, m)
		}
		return true // never wait: the writer does
	})
	a.mu.Lock()
	a.pending -= n
	// What the reader queued meanwhile goes after what is left.
	a.queue = append(bufs, a.queue...)
	a.mu.Unlock()
	a.wroteFirst(n)
	if n > 0 {
		a.ps.signalDrained()
	}
}

// consumed drops the first n bytes of bufs.
func consumed(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs[0] = nil
		bufs = bufs[1:]
	}
	if len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// wroteFirst counts n bytes written; once they cover the first bytes, the
// greeting's buffer is no longer referred to and goes back to the pool.
func (a *ptyAttachment) wroteFirst(n int) {
	if a.firstLeft <= 0 {
		return
	}
	a.firstLeft -= n
	if a.firstLeft <= 0 && a.lent != nil {
		a.ps.srv.giveBackGreetBuf(a.lent)
		a.lent = nil
	}
}

func (a *ptyAttachment) writeLoop() {
	defer close(a.writerDone)
	for {
		a.mu.Lock()
		bufs, final, dead := a.queue, a.final, a.dead
		a.queue = nil
		a.mu.Unlock()
		if dead {
			return
		}
		if len(bufs) > 0 {
			// The bare connection, so that a TCP connection sends a
			// backlog of chunks with one writev; out lives in the
			// attachment so that WriteTo's receiver does not escape
			// to the heap on every write.
			a.out = bufs
			n, err := a.out.WriteTo(a.c.Conn)
			clear(bufs)
			a.out = nil
			if err == nil {
				a.wroteFirst(int(n))
			}
			if err != nil {
				a.ps.remove(a)
				a.c.failWrite(err)
				return
			}
			a.mu.Lock()
			a.pending = max(0, a.pending-int(n))
			a.mu.Unlock()
			a.ps.signalDrained()
			continue
		}
		if final {
			a.c.closeWrite()
			return
		}
		<-a.wake
	}
}

func (a *ptyAttachment) write(p []byte) (int, error) {
	n, err := a.input.Write(p)
	if err != nil {
		return n, xerrors.Errorf("write to pty: %w", err)
	}
	return n, nil
}

// control queues frame behind the output queued so far. It counts toward
// the backlog like output, but never cuts the connection off.
func (a *ptyAttachment) control(frame []byte) {
	a.mu.Lock()
	if a.dead || a.final {
		a.mu.Unlock()
		return
	}
	a.queue = append(a.queue, frame)
	a.pending += len(frame)
	a.mu.Unlock()
	a.signal()
}

func (a *ptyAttachment) resize(height, width uint16) error {
	return a.ps.resize(height, width)
}

func (a *ptyAttachment) detach() {
	a.ps.remove(a)
	a.mu.Lock()
	a.dead = true
	a.mu.Unlock()
	a.signal()
	// A writer blocked on a client that stopped reading must give up; the
	// handler closes the connection.
	a.c.interrupt()
	<-a.writerDone
	_ = a.input.Close()
}
