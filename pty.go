package reconnectingpty

import (
	"io"
	"os"
	"os/exec"
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

// readReady reads whatever output the PTY has ready, up to len(p), in one
// call. A PTY hands out a few KiB per read(2); gathering what is already
// there before relaying it saves every attached connection a write per
// read, without waiting for anything that has not arrived.
func readReady(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var readErr error
	err := rc.Read(func(fd uintptr) bool {
		for n < len(p) {
			m, err := unix.Read(int(fd), p[n:])
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return n > 0 // wait for more only when there is nothing yet
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
		return n, nil // an error comes again on the next call
	}
	if err != nil {
		return 0, err
	}
	return 0, readErr
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
