package reconnectingpty

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"golang.org/x/xerrors"
)

const (
	// readSize is the PTY read size; the kernel rarely returns more.
	readSize = 32 << 10
	// hangupGrace is how long a closed session's process gets to exit on
	// SIGHUP before everything in its session is killed.
	hangupGrace = 2 * time.Second
	// maxInlineWrites bounds how many connections the reader writes a
	// chunk to itself before reading on; the rest have their writers
	// woken, which other cores can run.
	maxInlineWrites = 16
	// drainGrace is how long output is still read after the process exits
	// while something it left behind holds the terminal open.
	drainGrace = 250 * time.Millisecond
	// attachGrace is how long a command that exited at once waits for the
	// connection that created its session to attach and take its output.
	attachGrace = 2 * time.Second
	// reattachGrace is how long a handed-over session whose process has
	// exited waits for a client to come back (from the upgrade's
	// disconnect) and take the rest of its output.
	reattachGrace = 10 * time.Second
)

// greeting is what an in-process backend adds to the shared PTY core: what
// a connection is sent first. The core calls every method with its lock
// held, so each sees the output, the resizes and the connections joining in
// one order: whatever greet returns plus the live output that follows is
// exact, with nothing missed or repeated.
type greeting interface {
	// output sees every chunk of output, in order, once the ring holds it.
	// It may work on it later (vt parses it in afterOutput, and may keep
	// a copy to parse with later chunks), as long as every other method
	// sees the effect of all the output given before it was called. p is
	// the reader's buffer: it is valid until the reader's afterOutput
	// returns, and must be copied to be kept longer.
	output(p []byte)
	// resized sees every size the terminal is given, in order with output.
	resized(height, width uint16)
	// attached sees how many connections are attached, whenever that
	// changes.
	attached(n int)
	// greet appends what a joining connection is sent before live output:
	// the first bytes of a plain attach, and the redraw of a resume reset.
	// ring is the session's output so far. It appends to dst (a buffer the
	// server lends and reuses once the bytes are written), never returning
	// memory of its own.
	greet(dst []byte, ring *replayRing) []byte
	// finish waits for any work output started; the reader is done.
	finish()
}

// answerer is implemented by a greeting that answers the program's terminal
// queries itself (vt, while nobody is attached). answerWith gives it the
// function that writes an answer to the program, before any output; output
// up to answeredThrough may hold a query it answered already, which a
// resuming client must not be sent again.
type answerer interface {
	answerWith(answer func([]byte))
	answeredThrough() uint64
}

// outputWorker is implemented by a greeting with work to do on output
// that should not hold up the clients (vt's parsing): the reader calls
// afterOutput, without the core's lock, once it has relayed each chunk
// and before it reuses the chunk's buffer. more says the PTY may have
// more output ready (the read filled the buffer), so that the work can
// wait for it and be done in a larger batch.
type outputWorker interface{ afterOutput(more bool) }

// exactRedraw is implemented by a greeting whose greet draws the
// terminal's exact state (vt), so that a redraw serves a client better than
// replaying output from the start.
type exactRedraw interface{ exactRedraw() }

// ptySession is the core every in-process backend shares: it runs the
// command on a PTY of its own, reads its output without ever blocking it on
// a client, fans it out to bounded per-connection queues (cutting or
// pacing slow consumers), applies input and resizes, reaps the process and
// everything it started, and ends every connection with the session's
// reason. A greeting decides what a connection receives first.
type ptySession struct {
	outputClock // for SessionInfo.LastOutput

	srv     *Server
	logger  slog.Logger
	backend string
	// cmd is the command the session started, nil for a session an
	// upgrade handed over (the new image has only its process).
	cmd      *exec.Cmd
	proc     *os.Process
	ptmx     *os.File
	greeting greeting
	// onDone, if set, is called by run once everything else is over.
	onDone func()

	// inline are the attachments the reader writes the current chunk to
	// itself, at most maxInlineWrites; only the reader touches it.
	inline []*ptyAttachment

	mu     sync.Mutex
	ring   replayRing
	atts   map[*ptyAttachment]struct{}
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
	// reattached, for a session an upgrade handed over, is closed at its
	// first attach since.
	reattached     chan struct{}
	reattachedOnce sync.Once

	// pause, while an upgrade holds the reader still, says so; see
	// quiesce. kick wakes a reader that waits for something else.
	pause atomic.Pointer[readerPause]
	kick  chan struct{}
}

// startPTYSession starts cmd on a new PTY and the goroutines that serve it:
// the reader, the process waiter and run, which calls onDone last.
func startPTYSession(s *Server, backend BackendType, g greeting, cmd *exec.Cmd, height, width uint16, logger slog.Logger, onDone func()) (*ptySession, error) {
	ptmx, err := startPTY(cmd, height, width, s.startProcess)
	if err != nil {
		return nil, err
	}
	ps := newPTYSession(s, backend, g, ptmx, cmd.Process, logger, onDone)
	ps.cmd = cmd
	g.resized(height, width)
	ps.start()
	return ps, nil
}

// newPTYSession is the core of a session whose process runs on ptmx; start
// starts serving it.
func newPTYSession(s *Server, backend BackendType, g greeting, ptmx *os.File, proc *os.Process, logger slog.Logger, onDone func()) *ptySession {
	return &ptySession{
		srv:           s,
		logger:        logger.With(slog.F("backend", string(backend)), slog.F("pid", proc.Pid)),
		backend:       string(backend),
		proc:          proc,
		ptmx:          ptmx,
		greeting:      g,
		onDone:        onDone,
		ring:          newReplayRing(max(s.cfg.BufferSize, s.cfg.ResumeBufferSize)),
		atts:          map[*ptyAttachment]struct{}{},
		closeReq:      make(chan struct{}),
		drained:       make(chan struct{}, 1),
		stopReading:   make(chan struct{}),
		readerDone:    make(chan struct{}),
		readerRelease: make(chan struct{}),
		exited:        make(chan struct{}),
		doneCh:        make(chan struct{}),
		kick:          make(chan struct{}, 1),
	}
}

// start starts the reader, the process waiter and run.
func (ps *ptySession) start() {
	if a, ok := ps.greeting.(answerer); ok {
		a.answerWith(ps.answer)
	}
	go ps.read()
	go ps.wait()
	go ps.run()
}

func (ps *ptySession) done() <-chan struct{} { return ps.doneCh }

func (ps *ptySession) pid() int { return ps.proc.Pid }

// title is the window title the program last set, where the greeting
// keeps a terminal that knows it (vt); "" otherwise.
func (ps *ptySession) title() string {
	t, ok := ps.greeting.(titler)
	if !ok {
		return ""
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return t.title()
}

func (ps *ptySession) close(d disconnect) {
	ps.closeOnce.Do(func() {
		ps.closeWhy = d
		close(ps.closeReq)
	})
}

// read copies PTY output into the replay ring and every attachment's queue.
//
// A connection that falls its queue size (ConnQueueSize unless its
// ConnOptions say otherwise) behind the others is cut off at
// once, so it never holds up the rest. Only when every attached connection
// is a quarter of that behind does the reader wait, so that the process is
// paced like on a slow terminal instead of its readers being cut off; and
// if none of them catches up within SlowConsumerTimeout, they are cut off
// and the output flows again.
//
// It holds a read buffer only while it has output in hand, so that an
// idle session holds none.
func (ps *ptySession) read() {
	defer close(ps.readerDone)
	// Output keeps flowing even if the creator never attaches.
	hold := time.NewTimer(attachGrace)
	for waiting := true; waiting; {
		select {
		case <-ps.readerRelease:
			waiting = false
		case <-hold.C:
			waiting = false
		case <-ps.kick:
			ps.parkIfPaused()
		case <-ps.stopReading:
			return
		}
	}
	hold.Stop()
	rc, err := ps.ptmx.SyscallConn()
	if err != nil {
		ps.logger.Error(context.Background(), "read pty", slog.Error(err))
		return
	}
	worker, _ := ps.greeting.(outputWorker)
	for {
		// Between chunks: everything read so far has reached the ring,
		// the queues and the greeting.
		ps.parkIfPaused()
		bp, n, err := readReady(rc, &ps.srv.readBufs)
		if n > 0 {
			allBehind := ps.fanOut((*bp)[:n])
			if worker != nil {
				// A full buffer: the PTY may have more ready. Not
				// while the reader is about to wait for the clients,
				// which is time to parse in.
				worker.afterOutput(n == len(*bp) && !allBehind)
			}
			ps.srv.readBufs.Put(bp)
			if allBehind {
				ps.waitForRoom()
			}
		}
		if err != nil {
			if xerrors.Is(err, os.ErrDeadlineExceeded) {
				continue // quiesce's wake-up; parkIfPaused decides
			}
			return
		}
	}
}

// startReading releases the reader, once.
func (ps *ptySession) startReading() {
	ps.releaseOnce.Do(func() { close(ps.readerRelease) })
}

// allBehind reports whether there are attachments and all are behind.
func (ps *ptySession) allBehind() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.atts) == 0 {
		return false
	}
	for a := range ps.atts {
		if !a.behind() {
			return false
		}
	}
	return true
}

// waitForRoom holds the reader while every attachment is behind.
func (ps *ptySession) waitForRoom() {
	timer := time.NewTimer(ps.srv.cfg.SlowConsumerTimeout)
	defer timer.Stop()
	for ps.allBehind() && ps.pause.Load() == nil {
		select {
		case <-ps.drained:
		case <-ps.closeReq:
			return
		case <-ps.stopReading:
			return
		case <-timer.C:
			ps.mu.Lock()
			for a := range ps.atts {
				if a.behind() {
					ps.cut(a, "no progress on "+strconv.Itoa(a.backlog())+" bytes of output for "+ps.srv.cfg.SlowConsumerTimeout.String())
				}
			}
			ps.mu.Unlock()
			return
		}
	}
}

// cut disconnects a connection that fell too far behind. ps.mu is held.
func (ps *ptySession) cut(a *ptyAttachment, detail string) {
	ps.leave(a)
	a.mu.Lock()
	a.dead = true
	a.mu.Unlock()
	a.signal()
	ps.srv.metrics.errors.WithLabelValues(errorTypeSlowConsumer).Inc()
	a.c.end(disconnect{reason: DisconnectSlowConsumer, detail: detail})
	// Unblocks a writer stuck on a client that stopped reading, and the
	// connection's handler, which closes it.
	a.c.interrupt()
}

// leave takes a out of the fan-out. ps.mu is held.
func (ps *ptySession) leave(a *ptyAttachment) {
	if _, ok := ps.atts[a]; !ok {
		return
	}
	delete(ps.atts, a)
	ps.greeting.attached(len(ps.atts))
}

func (ps *ptySession) signalDrained() {
	select {
	case ps.drained <- struct{}{}:
	default:
	}
}

// fanOut adds p to the ring, the greeting and every attachment's queue; it
// reports whether every attachment is now behind.
func (ps *ptySession) fanOut(p []byte) (allBehind bool) {
	ps.tick()
	ps.mu.Lock()
	ps.ring.write(p)
	allBehind = len(ps.atts) > 0
	var chunk []byte // p's copy, shared read-only by every queue that needs it
	if len(ps.atts) > 0 {
		for a := range ps.atts {
			if len(ps.inline) < maxInlineWrites && a.claim(len(p)) {
				ps.inline = append(ps.inline, a)
				allBehind = false
				continue
			}
			if chunk == nil {
				chunk = bytes.Clone(p)
			}
			backlog, ok := a.enqueue(chunk)
			if !ok {
				ps.cut(a, "more than "+strconv.Itoa(a.queueSize)+" bytes of output unread")
				continue
			}
			allBehind = allBehind && backlog >= a.pauseAt()
		}
	}
	allBehind = allBehind && len(ps.atts) > 0
	// The greeting sees the chunk after the queues have it, and under the
	// lock, so a joining connection's greeting includes it exactly.
	ps.greeting.output(p)
	ps.mu.Unlock()
	for _, a := range ps.inline {
		a.writeNow(p)
	}
	clear(ps.inline)
	ps.inline = ps.inline[:0]
	ps.srv.metrics.outputBytes.Add(float64(len(p)))
	return allBehind
}

// answer writes the greeting's answer to a terminal query to the program.
// A program that floods queries without reading its input must not stall
// the greeting on a full input queue: such answers are dropped.
// (Connections write input through descriptors of their own, so this
// deadline touches nothing else.)
func (ps *ptySession) answer(reply []byte) {
	_ = ps.ptmx.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := ps.ptmx.Write(reply); err != nil {
		ps.logger.Debug(context.Background(), "answer terminal query", slog.Error(err))
	}
}

// waitForExitOrClose returns once the process has exited or the session
// is asked to close.
func (ps *ptySession) waitForExitOrClose() {
	select {
	case <-ps.exited:
	case <-ps.closeReq:
	}
}

// wait waits for the process to exit without reaping it.
func (ps *ptySession) wait() {
	defer close(ps.exited)
	awaitExit(ps.proc.Pid)
}

// reap collects the exited process and its exit code.
func (ps *ptySession) reap() {
	if ps.cmd == nil {
		// Handed over by an upgrade: the process is still this process's
		// child, and waited for as one.
		st, err := ps.proc.Wait()
		ps.exitCode = 1
		if err == nil {
			ps.exitCode = exitCodeOf(st)
		}
		return
	}
	err := ps.cmd.Wait()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case xerrors.As(err, &exitErr):
		ps.exitCode = exitCodeOf(exitErr.ProcessState)
	default:
		ps.exitCode = 1
	}
}

// exitCodeOf is a process's exit status as a shell reports it: 128 plus
// the signal for one killed by a signal.
func exitCodeOf(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// run ends the session when the process exits or close is called, and makes
// sure nothing the process started outlives it.
func (ps *ptySession) run() {
	if ps.onDone != nil {
		defer ps.onDone()
	}
	defer close(ps.doneCh)
	// Nothing is killed or reaped while an upgrade is under way: it
	// carries the session (its process exited or not) to the new image,
	// or resumes it here.
	ps.waitForExitOrClose()
	select {
	case <-ps.closeReq:
	default:
		// A command that exits at once still owes its output to the
		// connection that created the session (a handed-over one, to
		// the connections the upgrade closed).
		owedTo, owedFor := ps.readerRelease, attachGrace
		if ps.reattached != nil {
			owedTo, owedFor = ps.reattached, reattachGrace
		}
		select {
		case <-owedTo:
		case <-ps.closeReq:
		case <-time.After(owedFor):
		}
	}
	ps.srv.upgradeMu.RLock()
	defer ps.srv.upgradeMu.RUnlock()
	select {
	case <-ps.exited:
	case <-ps.closeReq:
		ps.srv.procs.killSession(ps.proc.Pid, syscall.SIGHUP)
		select {
		case <-ps.exited:
		case <-time.After(hangupGrace):
			ps.srv.procs.killSession(ps.proc.Pid, syscall.SIGKILL)
			<-ps.exited
		}
	}
	ps.startReading()
	// Read what the process wrote before it exited; a background job that
	// still holds the terminal must not keep the session alive.
	select {
	case <-ps.readerDone:
	case <-time.After(drainGrace):
	}
	ps.srv.procs.killSession(ps.proc.Pid, syscall.SIGKILL)
	ps.reap()
	close(ps.stopReading)
	_ = ps.ptmx.Close()
	<-ps.readerDone
	ps.greeting.finish()

	d := disconnect{reason: DisconnectProcessExited, exitCode: ps.exitCode, detail: "exit code " + strconv.Itoa(ps.exitCode)}
	select {
	case <-ps.closeReq:
		d = ps.closeWhy
	default:
	}
	ps.mu.Lock()
	ps.ending = true
	atts := ps.atts
	ps.atts = nil
	ps.mu.Unlock()
	for a := range atts {
		a.finish(d)
	}
	ps.logger.Debug(context.Background(), ps.backend+" session ended",
		slog.F("reason", string(d.reason)), slog.F("exit_code", ps.exitCode))
}

func (ps *ptySession) attach(c *conn, req attachRequest) (attachment, error) {
	a := &ptyAttachment{
		ps:         ps,
		c:          c,
		queueSize:  req.queueSize,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	// Input goes through a descriptor of the connection's own, so that
	// interrupting the connection stops a write that waits for a program
	// that does not read, without touching the other connections'.
	in, err := dupPollable(ps.ptmx)
	if err != nil {
		select {
		case <-ps.stopReading: // the PTY was closed as the session ended
			return nil, errSessionEnded
		default:
			return nil, err
		}
	}
	a.input = in
	switch nc := c.Conn.(type) {
	case *net.TCPConn:
		a.raw, _ = nc.SyscallConn()
	case *net.UnixConn:
		a.raw, _ = nc.SyscallConn()
	}
	c.whenInterrupted(func() { _ = in.SetWriteDeadline(time.Unix(1, 0)) })
	ps.mu.Lock()
	if ps.ending {
		ps.mu.Unlock()
		_ = in.Close()
		return nil, errSessionEnded
	}
	// The connection's size first, so that a greeting drawn from the
	// terminal's state is drawn at that size.
	if err := ps.resizeLocked(req.height, req.width); err != nil {
		ps.logger.Debug(context.Background(), "resize on attach", slog.Error(err))
	}
	// Choosing the first bytes and joining the fan-out under one lock is
	// what makes them plus live output exact: no byte missed or repeated.
	first, lent := ps.firstBytes(req)
	a.lent = lent
	if len(req.first) > 0 {
		first = append([][]byte{req.first}, first...)
	}
	for _, b := range first {
		a.queue = append(a.queue, b)
		a.pending += len(b)
	}
	a.firstLen, a.firstLeft = a.pending, a.pending
	ps.atts[a] = struct{}{}
	ps.greeting.attached(len(ps.atts))
	ps.mu.Unlock()
	ps.startReading()
	if ps.reattached != nil {
		ps.reattachedOnce.Do(func() { close(ps.reattached) })
	}
	a.writeFirst()
	go a.writeLoop()
	return a, nil
}

// resize sets the terminal size, in order with the output the greeting sees.
func (ps *ptySession) resize(height, width uint16) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.resizeLocked(height, width)
}

func (ps *ptySession) resizeLocked(height, width uint16) error {
	if err := resizePTY(ps.ptmx, height, width); err != nil {
		return err
	}
	ps.greeting.resized(height, width)
	return nil
}

func (ps *ptySession) remove(a *ptyAttachment) {
	ps.mu.Lock()
	ps.leave(a)
	ps.mu.Unlock()
	ps.signalDrained()
}
