package reconnectingpty

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"

	"golang.org/x/xerrors"
)

// screenAttachment is one connection's screen client and the goroutines
// that serve it: relay copies the client's terminal to the connection, and
// waitClient reaps the client.
type screenAttachment struct {
	s      *screenSession
	c      *conn
	client *exec.Cmd
	ptmx   *os.File
	// header is the resume header sent before the first output, if any.
	header []byte

	drawn      chan struct{} // closed when the client has drawn the screen
	refused    chan struct{} // closed when the client printed an error instead
	confirmed  chan struct{} // closed when attach succeeds: output may flow
	clientDone chan struct{} // closed when the client is reaped
	waiterDone chan struct{} // closed when waitClient returns
	readEnded  chan struct{} // closed when the relay has read all it will
	relayDone  chan struct{}

	mu       sync.Mutex
	detached bool
	final    disconnect // set before finishCh is closed
	finished bool
	// finishBy is when a finished connection stops waiting for its client:
	// one that attached as the daemon went away may neither write nor exit.
	finishBy time.Time
	finishCh chan struct{}

	detachOnce sync.Once
	detachCh   chan struct{}

	// writeMu keeps the relay's writes and link frames (control) whole.
	writeMu     sync.Mutex
	writeFailed bool
}

// waitClient reaps the client. A client that died on its own, while the
// daemon lives, leaves its terminal open in the daemon, which would keep
// the relay from ever reading EOF: once the relay has had time to read
// what the client left, the terminal is closed under it.
func (a *screenAttachment) waitClient() {
	defer close(a.waiterDone)
	awaitExit(a.client.Process.Pid)
	_ = a.client.Wait()
	close(a.clientDone)
	timer := time.NewTimer(screenClientGrace)
	defer timer.Stop()
	select {
	case <-a.readEnded:
	case <-a.detachCh:
	case <-timer.C:
		select {
		case <-a.s.daemonDone:
			// The session ended: the daemon let go of the terminal, and
			// the relay reads the rest at its connection's pace.
		default:
			_ = a.ptmx.Close()
		}
	}
}

// relay copies the client's output to the connection until the client's
// terminal closes, then ends the connection once the session's reason is
// known. The screen daemon writes to each client's terminal without
// waiting for slow ones, so a connection that does not read holds up only
// this goroutine.
func (a *screenAttachment) relay() {
	defer close(a.relayDone)
	buf := make([]byte, readSize)
	var filter chromeFilter
	writing := true
	first := true
	for {
		finishBy := a.setReadDeadline(filter.holding())
		n, err := a.ptmx.Read(buf)
		if n > 0 {
			if first {
				first = false
				// Screen opens every display by initialising the terminal,
				// which starts with an escape sequence; anything else is
				// the client explaining why it could not attach.
				if buf[0] != 0x1b {
					close(a.refused)
					writing = false
				} else {
					close(a.drawn)
					// Nothing reaches the connection before attach has
					// decided to keep this client.
					select {
					case <-a.confirmed:
						writing = a.sendHeader()
					case <-a.detachCh:
						writing = false
					}
				}
			}
			writing = a.send(filter.push(buf[:n]), writing)
		}
		if xerrors.Is(err, os.ErrDeadlineExceeded) {
			if !finishBy.IsZero() && !time.Now().Before(finishBy) {
				// The session is over and this client is stuck.
				_ = a.client.Process.Kill()
				break
			}
			writing = a.send(filter.flush(), writing)
			continue
		}
		if err != nil {
			break
		}
	}
	close(a.readEnded)
	// What is held back now is the daemon's goodbye to its displays.
	writing = a.send(filter.end(), writing)

	timer := time.NewTimer(screenClientGrace)
	defer timer.Stop()
	select {
	case <-a.finishCh:
	case <-a.detachCh:
		return
	case <-timer.C:
		select {
		case <-a.s.daemonDone:
			// The session is ending; its reason is on the way.
			select {
			case <-a.finishCh:
			case <-a.detachCh:
				return
			}
		default:
			a.s.srv.metrics.errors.WithLabelValues(errorTypeScreen).Inc()
			a.s.logger.Warn(context.Background(), "screen client exited while its session lives")
			a.s.remove(a)
			a.c.end(disconnect{reason: DisconnectStartFailed, detail: "screen client exited while the session lives"})
			// The handler sees the read fail and closes the connection.
			a.c.interrupt()
			return
		}
	}
	a.mu.Lock()
	detached, d := a.detached, a.final
	a.mu.Unlock()
	if detached {
		return
	}
	a.c.end(d)
	if writing {
		a.c.closeWrite()
	} else {
		a.c.interrupt()
	}
}

// setReadDeadline sets the relay's read deadline: soon while the chrome
// filter holds bytes back, and no later than finishBy once the session is
// over. It runs under a.mu, as finish does, so that neither undoes the
// other's deadline. It returns finishBy.
func (a *screenAttachment) setReadDeadline(holding bool) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var deadline time.Time
	if holding {
		deadline = time.Now().Add(screenChromeHold)
	}
	if !a.finishBy.IsZero() && (deadline.IsZero() || a.finishBy.Before(deadline)) {
		deadline = a.finishBy
	}
	_ = a.ptmx.SetReadDeadline(deadline)
	return a.finishBy
}

// send writes p to the connection unless writing has stopped; it reports
// whether writing goes on.
func (a *screenAttachment) send(p []byte, writing bool) bool {
	if !writing || len(p) == 0 {
		return writing
	}
	a.writeMu.Lock()
	_, err := a.c.Write(p)
	a.writeFailed = a.writeFailed || err != nil
	a.writeMu.Unlock()
	if err != nil {
		a.c.failWrite(err)
		return false
	}
	// Screen gives no access to the program's own output stream, so this
	// counts what each connection is sent, repaints included.
	a.s.srv.metrics.outputBytes.Add(float64(len(p)))
	a.s.tick()
	return true
}

// sendHeader writes the resume header, if any; it reports whether writing
// goes on.
func (a *screenAttachment) sendHeader() bool {
	if len(a.header) == 0 {
		return true
	}
	a.writeMu.Lock()
	_, err := a.c.Write(a.header)
	a.writeFailed = a.writeFailed || err != nil
	a.writeMu.Unlock()
	if err != nil {
		a.c.failWrite(err)
		return false
	}
	return true
}

// finish ends the connection with d once the client's output is written.
func (a *screenAttachment) finish(d disconnect) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished || a.detached {
		return
	}
	a.finished = true
	a.final = d
	close(a.finishCh)
	a.finishBy = time.Now().Add(screenFinishGrace)
	_ = a.ptmx.SetReadDeadline(a.finishBy)
}

func (a *screenAttachment) write(p []byte) (int, error) {
	// A partial write is counted as none: the escaping makes its length
	// no measure of p.
	if _, err := a.ptmx.Write(escapeScreenInput(p)); err != nil {
		return 0, xerrors.Errorf("write to screen client: %w", err)
	}
	return len(p), nil
}

// control writes frame to the connection between two of the relay's
// writes.
func (a *screenAttachment) control(frame []byte) {
	a.mu.Lock()
	over := a.finished || a.detached
	a.mu.Unlock()
	if over {
		return
	}
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if a.writeFailed {
		return
	}
	if _, err := a.c.Write(frame); err != nil {
		a.writeFailed = true
		a.c.failWrite(err)
	}
}

// escapeScreenInput doubles the command key as screen's literal sequence, so
// that input can never drive screen itself (detach it, kill the window):
// every byte a client types reaches the program.
func escapeScreenInput(p []byte) []byte {
	n := bytes.Count(p, []byte{screenEscape})
	if n == 0 {
		return p
	}
	out := make([]byte, 0, len(p)+n)
	for _, b := range p {
		out = append(out, b)
		if b == screenEscape {
			out = append(out, screenEscapeLiteral)
		}
	}
	return out
}

func (a *screenAttachment) resize(height, width uint16) error {
	if err := resizePTY(a.ptmx, height, width); err != nil {
		return xerrors.Errorf("resize screen client: %w", err)
	}
	return nil
}

// detach stops output to the connection and ends the client only: the
// hangup makes it tell the daemon it is leaving, and the session lives on.
func (a *screenAttachment) detach() {
	// A relay blocked on a client that stopped reading needs the interrupt;
	// the connection's handler closes it.
	a.c.interrupt()
	a.stop()
}

// stop ends the client and waits for the attachment's goroutines, without
// touching the connection.
func (a *screenAttachment) stop() {
	a.detachOnce.Do(func() {
		a.s.remove(a)
		a.mu.Lock()
		a.detached = true
		a.mu.Unlock()
		close(a.detachCh)
		_ = a.client.Process.Signal(syscall.SIGHUP)
		select {
		case <-a.clientDone:
		case <-time.After(hangupGrace):
			_ = a.client.Process.Kill()
			<-a.clientDone
		}
		// The daemon may still hold the client's terminal open; closing
		// our side ends the relay's read regardless.
		_ = a.ptmx.Close()
		<-a.relayDone
		<-a.waiterDone
	})
}

// screenChrome is what a screen daemon writes to every display as it exits,
// after escape sequences that reset the terminal and move to its last line
// (in a write of their own). None of it is the program's output, so the
// relay holds back anything that may be its start, and drops it when the
// client's terminal closes right after it.
const screenChrome = "\r\n[screen is terminating]\r\n"

// chromeBytes is screenChrome for byte comparisons; it is never written.
var chromeBytes = []byte(screenChrome)

// screenChromeHold is how long held-back output waits for the rest of the
// chrome: screen writes it in consecutive writes, so bytes that see nothing
// follow them were the program's.
const screenChromeHold = 200 * time.Millisecond

// trailingEscapes matches the terminal-reset sequences screen writes before
// screenChrome.
var trailingEscapes = regexp.MustCompile(`(?:\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x1b\([0-9A-Z])+$`)

// chromeFilter removes screenChrome, and the escape sequences just before
// it, from the end of a client's output.
type chromeFilter struct {
	held    []byte
	sentEOL bool // the last bytes let through were a line ending
}

// push returns the part of the output so far that cannot be the start of
// the chrome; the rest is held until more output, flush or end.
func (f *chromeFilter) push(p []byte) []byte {
	data := p
	if len(f.held) > 0 {
		data = append(f.held, p...)
		f.held = nil
	}
	hold := len(data)
	switch {
	case f.sentEOL && len(data) <= len(screenChrome)-2 && bytes.HasPrefix(chromeBytes[2:], data):
		// The chrome's line ending went out with the last output.
		hold = 0
	default:
		l := min(len(screenChrome), len(data))
		for ; l >= 2; l-- {
			if bytes.HasSuffix(data, chromeBytes[:l]) {
				break
			}
		}
		if l < 2 {
			break
		}
		start := len(data) - l
		window := max(0, start-256)
		if loc := trailingEscapes.FindIndex(data[window:start]); loc != nil {
			hold = window + loc[0]
		} else if l > 2 {
			// A bare line ending is too common to hold back.
			hold = start
		}
	}
	f.held = bytes.Clone(data[hold:])
	return f.let(data[:hold])
}

func (f *chromeFilter) let(p []byte) []byte {
	if len(p) > 0 {
		f.sentEOL = bytes.HasSuffix(p, []byte("\r\n"))
	}
	return p
}

// holding reports whether output is held back.
func (f *chromeFilter) holding() bool { return len(f.held) > 0 }

// flush lets held output through: nothing followed it in time.
func (f *chromeFilter) flush() []byte {
	held := f.held
	f.held = nil
	return f.let(held)
}

// end is called when the output is over: held bytes that end with the
// chrome are dropped, anything else (a prefix the program printed) is
// returned.
func (f *chromeFilter) end() []byte {
	if bytes.HasSuffix(f.held, chromeBytes[2:]) {
		f.held = nil
		return nil
	}
	return f.flush()
}
