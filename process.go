package reconnectingpty

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// This file is the server's process management: how a session's processes
// are started, how their exit is noticed and how they are killed.
//
//   - Starting: every child is forked by one goroutine locked to its OS
//     thread for the server's life (procStarter). The child gets
//     PR_SET_PDEATHSIG=SIGKILL, which the kernel fires when the thread that
//     forked it exits: a thread that lives exactly as long as the server,
//     and dies with it, whatever kills the server. File descriptors the
//     server process inherited without close-on-exec are hidden from the
//     child for the fork, so a child gets its standard streams and the
//     Commander's ExtraFiles only.
//   - Exit: waitExit parks the waiting goroutine in the runtime poller on a
//     pidfd, which becomes readable when the process exits. No OS thread is
//     blocked in waitid per session, and the process is not reaped, so its
//     PID (which names its terminal session) cannot be reused until the
//     caller reaps it after killing the session.
//   - Killing: the kernel can signal a process group but not a terminal
//     session, and a shell's background jobs sit in groups of their own in
//     its session; those are found in /proc. procTable coalesces the scans
//     of every caller waiting at the same time into one pass over /proc, so
//     closing N sessions at once costs a few passes, not N.

// waitExit returns when the process pid, a child not yet reaped, has
// exited, or an error if that cannot be watched. It does not reap it.
func waitExit(pid int) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return xerrors.Errorf("open pidfd of %d: %w", pid, err)
	}
	// A non-blocking fd makes os.NewFile register it with the poller.
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return xerrors.Errorf("pidfd of %d: %w", pid, err)
	}
	var waitErr error
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		// WNOWAIT: the exit is observed, the process stays unreaped.
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		switch {
		case err == unix.EINTR:
			return false
		case err != nil:
			waitErr = err
			return true
		}
		return info.Signo != 0 // zero: still running, wait for readability
	})
	if err != nil {
		return xerrors.Errorf("wait for %d: %w", pid, err)
	}
	if waitErr != nil {
		return xerrors.Errorf("wait for %d: %w", pid, waitErr)
	}
	return nil
}

// waitExitBlocking is the fallback for kernels without pidfds (before
// Linux 5.3): a thread waits in waitid, without reaping.
func waitExitBlocking(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// awaitExit waits for pid's exit through the poller, or through a blocked
// thread where pidfds are not available.
func awaitExit(pid int) {
	if waitExit(pid) != nil {
		waitExitBlocking(pid)
	}
}

// procStarter forks every child of a server from one locked OS thread.
type procStarter struct {
	reqs  chan startReq
	execs chan execReq
	// onMain is set when the starter runs on the process's main thread
	// (see newProcStarter); read after ready is closed.
	onMain bool
	ready  chan struct{}
	quit   chan struct{} // closed by stop
	done   chan struct{}
	// inherited are the descriptors (above stderr) that the process had
	// without close-on-exec when the server started: what it was started
	// with. Children must not see them.
	inherited []int
}

type startReq struct {
	cmd *exec.Cmd
	err chan error
}

type execReq struct {
	path      string
	args, env []string
	err       chan error
}

// mainThreadSearch bounds how long a starter looks for the main thread.
const mainThreadSearch = time.Second

// newProcStarter starts the forking goroutine; stop ends it. With
// wantMain, it runs on the process's main thread if it can find it within
// mainThreadSearch: a program image that an upgrade started has the
// sessions it took over as children of that thread (the thread that
// called exec became it), and its later children must share their
// parent thread, or its next exec, from one thread, would end the other
// and fire the parent-death signal of that thread's children.
func newProcStarter(inherited []int, wantMain bool) *procStarter {
	p := &procStarter{
		reqs:      make(chan startReq),
		execs:     make(chan execReq),
		ready:     make(chan struct{}),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		inherited: inherited,
	}
	go p.loop(wantMain)
	<-p.ready
	return p
}

func (p *procStarter) loop(wantMain bool) {
	defer close(p.done)
	// Never unlocked: when this goroutine returns its thread exits, and
	// any child still alive (there should be none) gets its SIGKILL. (The
	// main thread never exits before the process: Go parks it instead.)
	runtime.LockOSThread()
	if wantMain {
		// Any thread may run this goroutine; hop until it is the main
		// one (its thread ID is the process ID). The caller waits on
		// ready, parking its own goroutine, which frees that thread.
		deadline := time.Now().Add(mainThreadSearch)
		for unix.Gettid() != unix.Getpid() && time.Now().Before(deadline) {
			runtime.UnlockOSThread()
			time.Sleep(50 * time.Microsecond)
			runtime.LockOSThread()
		}
	}
	p.onMain = unix.Gettid() == unix.Getpid()
	close(p.ready)
	for {
		select {
		case r := <-p.reqs:
			r.err <- p.fork(r.cmd)
		case r := <-p.execs:
			// Returns only if the exec failed.
			r.err <- syscall.Exec(r.path, r.args, r.env)
		case <-p.quit:
			return
		}
	}
}

// exec executes a new program image from the starter's thread, the parent
// of every child it started; it returns only if that fails.
func (p *procStarter) exec(path string, args, env []string) error {
	r := execReq{path: path, args: args, env: env, err: make(chan error, 1)}
	select {
	case p.execs <- r:
	case <-p.quit:
		return xerrors.Errorf("exec %q: %w", path, ErrServerClosed)
	}
	return <-r.err
}

// start starts cmd on the starter's thread, with SIGKILL as its parent
// death signal unless the Commander chose another.
func (p *procStarter) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	r := startReq{cmd: cmd, err: make(chan error, 1)}
	select {
	case p.reqs <- r:
	case <-p.quit:
		return xerrors.Errorf("start %q: %w", cmd.Path, ErrServerClosed)
	}
	return <-r.err
}

// stop ends the starter; later starts fail. Call it once.
func (p *procStarter) stop() {
	close(p.quit)
	<-p.done
}

// startProcess starts a child of the server; see procStarter.
func (s *Server) startProcess(cmd *exec.Cmd) error {
	s.mu.Lock()
	if s.starterStopped {
		s.mu.Unlock()
		return xerrors.Errorf("start %q: %w", cmd.Path, ErrServerClosed)
	}
	if s.starter == nil {
		s.starter = newProcStarter(s.inherited, false)
	}
	st := s.starter
	s.mu.Unlock()
	return st.start(cmd)
}

// fork starts cmd with the inherited descriptors marked close-on-exec for
// the moment of the fork, then restores them, so that the server process
// itself is left as it was (it may mean to pass them on with exec).
func (p *procStarter) fork(cmd *exec.Cmd) error {
	var hidden []int
	for _, fd := range p.inherited {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err == nil {
			hidden = append(hidden, fd)
		}
	}
	err := cmd.Start()
	for _, fd := range hidden {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags&^unix.FD_CLOEXEC)
		}
	}
	if err != nil {
		return xerrors.Errorf("start %q: %w", cmd.Path, err)
	}
	return nil
}

// inheritableFDs lists the descriptors above stderr that a child would
// inherit: those without close-on-exec. Go opens every descriptor of its
// own with close-on-exec, so these are what the process was started with
// (or what the application made inheritable on purpose).
func inheritableFDs() []int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	return fds
}

// procTable answers "which processes are in terminal session S" for many
// callers with few passes over /proc: a caller waits for a pass that began
// after it asked, and every caller waiting for the same pass shares it.
type procTable struct {
	mu      sync.Mutex
	cond    *sync.Cond
	busy    bool      // a pass is running
	pending *procScan // the pass the next askers share; nil if none asked
	passes  int       // passes made, for tests
}

// procScan is one pass over /proc.
type procScan struct {
	finished bool
	procs    map[int][]procInfo // by session ID
}

// procInfo is what a pass records of one process.
type procInfo struct {
	pid    int
	zombie bool
}

func newProcTable() *procTable {
	t := &procTable{}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// scan returns a pass over /proc that began after scan was called.
func (t *procTable) scan() *procScan {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == nil {
		t.pending = &procScan{}
	}
	r := t.pending
	for !r.finished {
		if !t.busy && t.pending == r {
			// This caller makes the pass for everyone waiting on r.
			t.busy = true
			t.pending = nil
			t.mu.Unlock()
			procs := readSessions()
			t.mu.Lock()
			r.procs, r.finished = procs, true
			t.busy = false
			t.passes++
			t.cond.Broadcast()
			break
		}
		t.cond.Wait()
	}
	return r
}

// killSession sends sig to every process in the terminal session that pid
// leads: its process group and any process that moved to another group of
// the same session (a shell's background jobs). A process that started a
// session of its own has left on purpose and is not chased. pid must not
// have been reaped yet, so that it still names the session.
func (t *procTable) killSession(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
	for _, p := range t.scan().procs[pid] {
		if p.pid != pid && !p.zombie {
			_ = syscall.Kill(p.pid, sig)
		}
	}
	_ = syscall.Kill(pid, sig)
}

// sessionAlive reports whether any live process (not a zombie) is in the
// terminal session sid.
func (t *procTable) sessionAlive(sid int) bool {
	for _, p := range t.scan().procs[sid] {
		if !p.zombie {
			return true
		}
	}
	return false
}

// readSessions reads every process's session ID from /proc/PID/stat.
func readSessions() map[int][]procInfo {
	out := map[int][]procInfo{}
	d, err := os.Open("/proc")
	if err != nil {
		return out
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return out
	}
	buf := make([]byte, 512)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		stat, ok := readStat(pid, buf)
		if !ok {
			continue
		}
		// The command name is in parentheses and may hold anything; the
		// fields after it are: state ppid pgrp session ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 4 {
			continue
		}
		sid, err := strconv.Atoi(string(f[3]))
		if err != nil {
			continue
		}
		out[sid] = append(out[sid], procInfo{pid: pid, zombie: string(f[0]) == "Z"})
	}
	return out
}

// readStat reads /proc/PID/stat into buf without allocating a new buffer.
func readStat(pid int, buf []byte) ([]byte, bool) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, buf)
	if err != nil || n <= 0 {
		return nil, false
	}
	return buf[:n], true
}

// screenOwnerFile names the file in a screen directory that says which
// server process made it.
const screenOwnerFile = "owner"

// processIdentity is "PID STARTTIME" for a live process, which no other
// process has (a reused PID has another start time), or "" if it is gone.
func processIdentity(pid int) string {
	stat, ok := readStat(pid, make([]byte, 1024))
	if !ok {
		return ""
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	// After the command name, field 22 of stat (starttime) is the 20th.
	f := bytes.Fields(stat[i+1:])
	if len(f) < 20 {
		return ""
	}
	return strconv.Itoa(pid) + " " + string(f[19])
}

// removeStaleScreenDirs removes the screen directories under base that a
// server process which no longer exists left behind (it was killed before
// it could clean up). Its sessions died with it (see procStarter); their
// sockets, gates and status files are all that is left.
func removeStaleScreenDirs(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "rpty-screen-*"))
	for _, d := range dirs {
		owner, err := os.ReadFile(filepath.Join(d, screenOwnerFile))
		if err != nil {
			continue // not ours to judge
		}
		var pid int
		if _, err := fmt.Sscan(string(owner), &pid); err != nil || pid <= 0 {
			continue
		}
		if processIdentity(pid) != strings.TrimSpace(string(owner)) {
			_ = os.RemoveAll(d)
		}
	}
}
