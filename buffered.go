package reconnectingpty

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"cdr.dev/slog/v3"
	"golang.org/x/xerrors"
)

const (
	// readSize is the PTY read size; the kernel rarely returns more.
	readSize = 32 << 10
	// hangupGrace is how long a closed session's process gets to exit on
	// SIGHUP before everything in its session is killed.
	hangupGrace = 2 * time.Second
	// drainGrace is how long output is still read after the process exits
	// while something it left behind holds the terminal open.
	drainGrace = 250 * time.Millisecond
	// attachGrace is how long a command that exited at once waits for the
	// connection that created its session to attach and take its output.
	attachGrace = 2 * time.Second
)

// buffered is the backend that runs the command on a PTY of its own and
// replays the last BufferSize bytes of output to every attaching connection.
type buffered struct {
	srv    *Server
	logger slog.Logger
	cmd    *exec.Cmd
	ptmx   *os.File

	mu     sync.Mutex
	ring   ring
	atts   map[*bufferedAttachment]struct{}
	ending bool // set once the output has ended: no more attaches

	closeOnce sync.Once
	closeReq  chan struct{}
	closeWhy  disconnect // written before closeReq is closed

	// drained is signalled when an attachment's backlog shrinks or one
	// leaves, to wake a reader waiting for room.
	drained chan struct{}
	// stopReading is closed when the PTY is about to be closed.
	stopReading chan struct{}

	// The reader holds off until the creating connection has attached, so
	// that it sees the command's output from the first byte rather than
	// what is left in the replay ring; until then the PTY holds it.
	releaseOnce   sync.Once
	readerRelease chan struct{} // closed at the first attach, or by run
	readerDone    chan struct{}
	// exited is closed when the process has exited. It is reaped only
	// after everything else in its terminal session is killed: until then
	// its PID, which names that session, cannot be reused.
	exited   chan struct{}
	exitCode int // set by reap
	doneCh   chan struct{}
}

func startBuffered(s *Server, cmd *exec.Cmd, height, width uint16, logger slog.Logger) (*buffered, error) {
	ptmx, err := startPTY(cmd, height, width, s.startProcess)
	if err != nil {
		return nil, err
	}
	b := &buffered{
		srv:           s,
		logger:        logger.With(slog.F("backend", string(BackendBuffered)), slog.F("pid", cmd.Process.Pid)),
		cmd:           cmd,
		ptmx:          ptmx,
		ring:          ring{buf: make([]byte, s.cfg.BufferSize)},
		atts:          map[*bufferedAttachment]struct{}{},
		closeReq:      make(chan struct{}),
		drained:       make(chan struct{}, 1),
		stopReading:   make(chan struct{}),
		readerDone:    make(chan struct{}),
		readerRelease: make(chan struct{}),
		exited:        make(chan struct{}),
		doneCh:        make(chan struct{}),
	}
	go b.read()
	go b.wait()
	go b.run()
	return b, nil
}

func (b *buffered) done() <-chan struct{} { return b.doneCh }

func (b *buffered) close(d disconnect) {
	b.closeOnce.Do(func() {
		b.closeWhy = d
		close(b.closeReq)
	})
}

// read copies PTY output into the replay ring and every attachment's queue.
//
// A connection that falls ConnQueueSize behind the others is cut off at
// once, so it never holds up the rest. Only when every attached connection
// is a quarter of that behind does the reader wait, so that the process is
// paced like on a slow terminal instead of its readers being cut off; and
// if none of them catches up within SlowConsumerTimeout, they are cut off
// and the output flows again.
func (b *buffered) read() {
	defer close(b.readerDone)
	// Output keeps flowing even if the creator never attaches.
	hold := time.NewTimer(attachGrace)
	select {
	case <-b.readerRelease:
	case <-hold.C:
	case <-b.stopReading:
		return
	}
	hold.Stop()
	rc, err := b.ptmx.SyscallConn()
	if err != nil {
		b.logger.Error(context.Background(), "read pty", slog.Error(err))
		return
	}
	buf := make([]byte, readSize)
	for {
		n, err := readReady(rc, buf)
		if n > 0 && b.fanOut(buf[:n]) {
			b.waitForRoom()
		}
		if err != nil {
			return
		}
	}
}

// startReading releases the reader, once.
func (b *buffered) startReading() {
	b.releaseOnce.Do(func() { close(b.readerRelease) })
}

// pauseAt is the backlog at which a connection counts as behind.
func (b *buffered) pauseAt() int { return b.srv.cfg.ConnQueueSize / 4 }

// allBehind reports whether there are attachments and all are behind.
func (b *buffered) allBehind() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.atts) == 0 {
		return false
	}
	for a := range b.atts {
		if a.backlog() < b.pauseAt() {
			return false
		}
	}
	return true
}

// waitForRoom holds the reader while every attachment is behind.
func (b *buffered) waitForRoom() {
	timer := time.NewTimer(b.srv.cfg.SlowConsumerTimeout)
	defer timer.Stop()
	for b.allBehind() {
		select {
		case <-b.drained:
		case <-b.closeReq:
			return
		case <-b.stopReading:
			return
		case <-timer.C:
			b.mu.Lock()
			for a := range b.atts {
				if a.backlog() >= b.pauseAt() {
					b.cut(a, "no progress on "+strconv.Itoa(a.backlog())+" bytes of output for "+b.srv.cfg.SlowConsumerTimeout.String())
				}
			}
			b.mu.Unlock()
			return
		}
	}
}

// cut disconnects a connection that fell too far behind. b.mu is held.
func (b *buffered) cut(a *bufferedAttachment, detail string) {
	delete(b.atts, a)
	a.mu.Lock()
	a.dead = true
	a.mu.Unlock()
	a.signal()
	b.srv.metrics.errors.WithLabelValues(errorTypeSlowConsumer).Inc()
	a.c.end(disconnect{reason: DisconnectSlowConsumer, detail: detail})
	// Unblocks a writer stuck on a client that stopped reading, and the
	// connection's handler, which closes it.
	a.c.interrupt()
}

func (b *buffered) signalDrained() {
	select {
	case b.drained <- struct{}{}:
	default:
	}
}

// fanOut adds p to the ring and every attachment's queue; it reports
// whether every attachment is now behind.
func (b *buffered) fanOut(p []byte) (allBehind bool) {
	b.mu.Lock()
	b.ring.write(p)
	allBehind = len(b.atts) > 0
	if len(b.atts) > 0 {
		chunk := bytes.Clone(p) // shared, read-only, by every queue
		for a := range b.atts {
			backlog, ok := a.enqueue(chunk)
			if !ok {
				b.cut(a, "more than "+strconv.Itoa(b.srv.cfg.ConnQueueSize)+" bytes of output unread")
				continue
			}
			allBehind = allBehind && backlog >= b.pauseAt()
		}
	}
	allBehind = allBehind && len(b.atts) > 0
	b.mu.Unlock()
	b.srv.metrics.outputBytes.Add(float64(len(p)))
	return allBehind
}

// wait waits for the process to exit without reaping it.
func (b *buffered) wait() {
	defer close(b.exited)
	awaitExit(b.cmd.Process.Pid)
}

// reap collects the exited process and its exit code.
func (b *buffered) reap() {
	err := b.cmd.Wait()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case xerrors.As(err, &exitErr):
		b.exitCode = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			b.exitCode = 128 + int(ws.Signal())
		}
	default:
		b.exitCode = 1
	}
}

// run ends the session when the process exits or close is called, and makes
// sure nothing the process started outlives it.
func (b *buffered) run() {
	defer close(b.doneCh)
	select {
	case <-b.exited:
		// A command that exits at once still owes its output to the
		// connection that created the session.
		select {
		case <-b.readerRelease:
		case <-b.closeReq:
		case <-time.After(attachGrace):
		}
	case <-b.closeReq:
		b.srv.procs.killSession(b.cmd.Process.Pid, syscall.SIGHUP)
		select {
		case <-b.exited:
		case <-time.After(hangupGrace):
			b.srv.procs.killSession(b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.exited
		}
	}
	b.startReading()
	// Read what the process wrote before it exited; a background job that
	// still holds the terminal must not keep the session alive.
	select {
	case <-b.readerDone:
	case <-time.After(drainGrace):
	}
	b.srv.procs.killSession(b.cmd.Process.Pid, syscall.SIGKILL)
	b.reap()
	close(b.stopReading)
	_ = b.ptmx.Close()
	<-b.readerDone

	d := disconnect{reason: DisconnectProcessExited, exitCode: b.exitCode, detail: "exit code " + strconv.Itoa(b.exitCode)}
	select {
	case <-b.closeReq:
		d = b.closeWhy
	default:
	}
	b.mu.Lock()
	b.ending = true
	atts := b.atts
	b.atts = nil
	b.mu.Unlock()
	for a := range atts {
		a.finish(d)
	}
	b.logger.Debug(context.Background(), "buffered session ended",
		slog.F("reason", string(d.reason)), slog.F("exit_code", b.exitCode))
}

func (b *buffered) attach(c *conn, height, width uint16) (attachment, error) {
	a := &bufferedAttachment{
		b:          b,
		c:          c,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	// Input goes through a descriptor of the connection's own, so that
	// interrupting the connection stops a write that waits for a program
	// that does not read, without touching the other connections'.
	in, err := dupPollable(b.ptmx)
	if err != nil {
		select {
		case <-b.stopReading: // closed just before the PTY is
			return nil, errSessionEnded
		default:
			return nil, err
		}
	}
	a.input = in
	c.whenInterrupted(func() { _ = in.SetWriteDeadline(time.Unix(1, 0)) })
	b.mu.Lock()
	if b.ending {
		b.mu.Unlock()
		_ = in.Close()
		return nil, errSessionEnded
	}
	// Taking the replay and joining the fan-out under one lock is what
	// makes replay plus live output exact: no byte missed or repeated.
	if replay := b.ring.replay(); len(replay) > 0 {
		a.queue = [][]byte{replay}
		a.pending = len(replay)
		b.srv.metrics.replayBytes.Add(float64(len(replay)))
	}
	b.atts[a] = struct{}{}
	b.mu.Unlock()
	b.startReading()
	go a.writeLoop()
	if err := a.resize(height, width); err != nil {
		b.logger.Debug(context.Background(), "resize on attach", slog.Error(err))
	}
	return a, nil
}

func (b *buffered) remove(a *bufferedAttachment) {
	b.mu.Lock()
	delete(b.atts, a)
	b.mu.Unlock()
	b.signalDrained()
}

// bufferedAttachment is one connection's bounded output queue and the
// goroutine that drains it.
type bufferedAttachment struct {
	b     *buffered
	c     *conn
	input *os.File // the PTY, for this connection's input

	mu      sync.Mutex
	queue   [][]byte
	pending int  // bytes queued or being written
	final   bool // the session ended: flush, then end the output
	dead    bool // detached or cut off: stop at once

	wake       chan struct{}
	writerDone chan struct{}
}

// enqueue adds chunk unless that would put more than ConnQueueSize bytes
// behind; it returns the backlog, and false when the connection must be
// cut off.
func (a *bufferedAttachment) enqueue(chunk []byte) (backlog int, ok bool) {
	a.mu.Lock()
	if a.pending+len(chunk) > a.b.srv.cfg.ConnQueueSize {
		a.mu.Unlock()
		return a.pending, false
	}
	a.queue = append(a.queue, chunk)
	a.pending += len(chunk)
	backlog = a.pending
	a.mu.Unlock()
	a.signal()
	return backlog, true
}

// backlog is how many bytes of live output the connection has yet to take.
func (a *bufferedAttachment) backlog() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending
}

func (a *bufferedAttachment) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// finish ends the connection with d once the queued output is written.
func (a *bufferedAttachment) finish(d disconnect) {
	a.c.end(d)
	// Input is over too: a write waiting for the ended program gives up.
	_ = a.input.SetWriteDeadline(time.Unix(1, 0))
	a.mu.Lock()
	a.final = true
	a.mu.Unlock()
	a.signal()
}

func (a *bufferedAttachment) writeLoop() {
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
			nb := net.Buffers(bufs)
			n, err := nb.WriteTo(a.c)
			if err != nil {
				a.b.remove(a)
				a.c.failWrite(err)
				return
			}
			a.mu.Lock()
			a.pending = max(0, a.pending-int(n))
			a.mu.Unlock()
			a.b.signalDrained()
			continue
		}
		if final {
			a.c.closeWrite()
			return
		}
		<-a.wake
	}
}

func (a *bufferedAttachment) write(p []byte) error {
	if _, err := a.input.Write(p); err != nil {
		return xerrors.Errorf("write to pty: %w", err)
	}
	return nil
}

func (a *bufferedAttachment) resize(height, width uint16) error {
	return resizePTY(a.b.ptmx, height, width)
}

func (a *bufferedAttachment) detach() {
	a.b.remove(a)
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

// ring keeps the last len(buf) bytes of output.
type ring struct {
	buf   []byte
	pos   int   // where the next byte goes
	total int64 // bytes ever written
}

func (r *ring) write(p []byte) {
	size := len(r.buf)
	if size == 0 {
		return
	}
	r.total += int64(len(p))
	if len(p) >= size {
		copy(r.buf, p[len(p)-size:])
		r.pos = 0
		return
	}
	n := copy(r.buf[r.pos:], p)
	copy(r.buf, p[n:])
	r.pos = (r.pos + len(p)) % size
}

// replay returns a copy of the kept output that starts where a terminal
// can safely start reading it.
func (r *ring) replay() []byte {
	size := len(r.buf)
	if r.total <= int64(size) {
		return bytes.Clone(r.buf[:r.total])
	}
	out := make([]byte, 0, size)
	out = append(out, r.buf[r.pos:]...)
	out = append(out, r.buf[:r.pos]...)
	return out[safeStart(out):]
}

// safeStart finds where to begin a replay whose first bytes were cut off:
// not inside a UTF-8 sequence nor an escape sequence. A line start is the
// best place; failing that, the start of an escape sequence; failing
// that, the first character boundary.
func safeStart(b []byte) int {
	const window = 8 << 10
	head := b[:min(len(b), window)]
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		return i + 1
	}
	if i := bytes.IndexByte(head, 0x1b); i >= 0 {
		return i
	}
	for i := 0; i < len(b) && i < utf8.UTFMax; i++ {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return 0
}
