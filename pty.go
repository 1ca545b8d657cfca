package reconnectingpty

import (
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// startPTY starts cmd with start as the leader of a new session on a new PTY of the
// given size and returns the PTY's master side.
//
// The master is non-blocking and registered with the runtime poller, so
// that closing it interrupts a pending Read (creack/pty's Start leaves it
// blocking, where Close waits for the Read) and resizing it races nothing.
func startPTY(cmd *exec.Cmd, height, width uint16, start func(*exec.Cmd) error) (*os.File, error) {
	ptmx, tty, err := openPTY()
	if err != nil {
		return nil, err
	}
	defer tty.Close()
	ttyFd := int(tty.Fd())
	if err := unix.IoctlSetWinsize(ttyFd, unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width}); err != nil {
		_ = ptmx.Close()
		return nil, xerrors.Errorf("set pty size: %w", err)
	}
	// With IUTF8 the line discipline erases a whole multibyte character
	// on backspace in cooked mode, not its last byte.
	if t, err := unix.IoctlGetTermios(ttyFd, unix.TCGETS); err == nil {
		t.Iflag |= unix.IUTF8
		_ = unix.IoctlSetTermios(ttyFd, unix.TCSETS, t)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	if err := start(cmd); err != nil {
		_ = ptmx.Close()
		return nil, xerrors.Errorf("start %q: %w", cmd.Path, err)
	}
	// The process has its environment now; a session lives long and
	// should not keep a copy.
	cmd.Env = nil
	return ptmx, nil
}

// openPTY opens a PTY pair; the master is non-blocking and pollable.
func openPTY() (master, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, xerrors.Errorf("open pty: %w", err)
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	_ = m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		_ = tty.Close()
		return nil, nil, xerrors.Errorf("make pty master non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), tty, nil
}

// resizePTY sets the terminal size of the PTY whose master is f.
func resizePTY(f *os.File, height, width uint16) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return xerrors.Errorf("resize pty: %w", err)
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width})
	}); err != nil {
		return xerrors.Errorf("resize pty: %w", err)
	}
	if ioctlErr != nil {
		return xerrors.Errorf("resize pty: %w", ioctlErr)
	}
	return nil
}

// readReady reads whatever output the PTY has ready, up to a pooled
// buffer's length, in one call, and returns the buffer, which the caller
// puts back. A PTY hands out a few KiB per read(2); gathering what is
// already there before relaying it saves every attached connection a write
// per read, without waiting for anything that has not arrived. The buffer
// is taken from the pool only while there is output, so that a reader
// waiting on an idle terminal holds none.
func readReady(rc syscall.RawConn, pool *sync.Pool) (buf *[]byte, n int, err error) {
	var readErr error
	err = rc.Read(func(fd uintptr) bool {
		if buf == nil {
			buf = getReadBuffer(pool)
		}
		p := *buf
		for n < len(p) {
			m, err := unix.Read(int(fd), p[n:])
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				if n > 0 {
					return true
				}
				// Nothing yet: wait without holding the buffer.
				pool.Put(buf)
				buf = nil
				return false
			case err != nil:
				readErr = err
				return true
			case m == 0:
				readErr = io.EOF
				return true
			}
			n += m
		}
		return true
	})
	if n > 0 {
		return buf, n, nil // an error comes again on the next call
	}
	if buf != nil {
		pool.Put(buf)
	}
	if err != nil {
		return nil, 0, err
	}
	return nil, 0, readErr
}

// getReadBuffer takes a readSize buffer from pool, or makes one.
func getReadBuffer(pool *sync.Pool) *[]byte {
	if b, ok := pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, readSize)
	return &b
}

// dupPollable duplicates a pollable file, such as a PTY master, into a
// file of its own, with its own deadlines.
func dupPollable(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, xerrors.Errorf("duplicate %s: %w", f.Name(), err)
	}
	var fd int
	var dupErr error
	if err := rc.Control(func(old uintptr) {
		fd, dupErr = unix.FcntlInt(old, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, xerrors.Errorf("duplicate %s: %w", f.Name(), err)
	}
	if dupErr != nil {
		return nil, xerrors.Errorf("duplicate %s: %w", f.Name(), dupErr)
	}
	// The copy shares the non-blocking flag, so it is pollable too.
	return os.NewFile(uintptr(fd), f.Name()), nil
}
