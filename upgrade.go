package reconnectingpty

import (
	"bufio"
	"context"
	"hash/crc32"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// errUpgrading refuses a session that would start while an upgrade runs;
// its client reconnects to the new image.
var errUpgrading = xerrors.New("the server is upgrading")

// UpgradeOptions says which program image Server.Upgrade executes and what
// it carries over besides the sessions.
type UpgradeOptions struct {
	// Path is the program to execute. Default: /proc/self/exe, the
	// running binary as it was started (even if its file was replaced
	// since).
	Path string
	// Args is its argument list, program name first. Default: os.Args.
	Args []string
	// Env is its environment. Default: os.Environ(). HandoverEnv is set
	// in it, replacing any value it had.
	Env []string
	// Listeners are carried to the new image by name; it gets them back
	// with Handover.Listener and serves on them without a refused
	// connection: connections that arrive meanwhile wait in the
	// listener's backlog. Each must be a *net.TCPListener or
	// *net.UnixListener, or have their File method. Names are 1-64
	// characters of A-Z a-z 0-9 _ . -.
	Listeners map[string]net.Listener
}

// upgradeRun is an upgrade under way; failed is closed when it failed and
// the server serves again.
type upgradeRun struct {
	failed chan struct{}
	// parked counts the Serve loops holding off Accept, and refusing is
	// set once they all do: from then on a connection that still comes
	// in (ServeConn's, or a listener's that cannot be held) is refused.
	// Both guarded by the server's mu.
	parked   int
	refusing bool
}

// carried is one session an upgrade is taking along.
type carried struct {
	sess   *session
	ps     *ptySession    // in-process sessions
	screen *screenSession // or screen's
	pause  *readerPause
	fd     int // the PTY master's (screen: the gate's) descriptor, inheritable
}

// pid is the carried session's process: its program's, or screen's daemon.
func (c carried) pid() int {
	if c.screen != nil {
		return c.screen.pid()
	}
	return c.ps.pid()
}

// Upgrade hands every live session to a new program image in this same
// process (execve), so that the sessions' processes stay its children,
// and on success does not return. It stops accepting connections (on the
// listeners given to Serve), closes every connection with
// DisconnectServerUpgrade so that clients reconnect at once and resume
// from the new image, stops reading the sessions' terminals between two
// chunks of output, writes the sessions' state to a memory file, keeps
// that file, the terminals and opts.Listeners open across the exec and
// executes opts.Path. The new image takes them back with Inherited and
// Server.Restore.
//
// If anything fails before the new image runs (the program is missing or
// not executable, ctx ends), Upgrade returns the error and the server
// serves again exactly as before: the same sessions, the same listeners;
// only the connections were closed, and their clients reconnect.
//
// Nothing else in the process may start children while Upgrade runs: they
// would inherit the sessions' terminals.
func (s *Server) Upgrade(ctx context.Context, opts UpgradeOptions) error {
	began := time.Now()
	if opts.Path == "" {
		opts.Path = "/proc/self/exe"
	}
	if opts.Args == nil {
		opts.Args = os.Args
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	for name := range opts.Listeners {
		if !listenerName.MatchString(name) {
			return xerrors.Errorf("upgrade: listener name %q: want 1-64 characters of A-Z a-z 0-9 _ . -", name)
		}
	}
	// A program that is not there fails here, before anyone is
	// disconnected; one the kernel cannot run fails at the exec.
	if err := unix.Access(opts.Path, unix.X_OK); err != nil {
		return xerrors.Errorf("upgrade: execute %q: %w", opts.Path, err)
	}
	if err := s.upgradable(); err != nil {
		return err
	}

	u, listeners, err := s.beginUpgrade()
	if err != nil {
		return err
	}
	up := &upgrade{s: s, run: u, listeners: listeners}
	err = up.prepare(ctx, opts)
	if err == nil {
		phases := []slog.Field{
			slog.F("sessions", len(up.carried)),
			slog.F("stop_accepting", up.stopped.Sub(began).String()),
			slog.F("disconnect", up.disconnected.Sub(up.stopped).String()),
			slog.F("quiesce", up.quiesced.Sub(up.disconnected).String()),
			slog.F("write", up.written.Sub(up.quiesced).String()),
			slog.F("write_taken", up.taken.Sub(up.quiesced).String()),
			slog.F("state_bytes", up.stateBytes),
			slog.F("path", opts.Path),
		}
		s.logger.Info(ctx, "reconnecting pty upgrade: executing the new image", phases...)
		err = s.exec(opts.Path, opts.Args, up.env(opts.Env, time.Now()))
		err = xerrors.Errorf("upgrade: execute %q: %w", opts.Path, err)
	}
	up.undo()
	s.logger.Warn(ctx, "reconnecting pty upgrade failed; serving on", slog.Error(err))
	return err
}

// upgradable refuses an upgrade that would lose sessions.
func (s *Server) upgradable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restored > 0 && (s.starter == nil || !s.starter.onMain) {
		return xerrors.New("upgrade: the sessions this image took over are children of its main thread, and it could not start its children there; an exec now would kill them (see docs/upgrade.md)")
	}
	return nil
}

// beginUpgrade marks the server as upgrading: new connections and
// sessions are refused from now on.
func (s *Server) beginUpgrade() (*upgradeRun, []net.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, xerrors.Errorf("upgrade: %w", ErrServerClosed)
	}
	if s.upgrading != nil {
		return nil, nil, xerrors.New("upgrade: another upgrade is under way")
	}
	u := &upgradeRun{failed: make(chan struct{})}
	s.upgrading = u
	var ls []net.Listener
	for l := range s.listeners {
		ls = append(ls, l)
	}
	return u, ls, nil
}

// upgrade is one Upgrade's work, and what undo gives back.
type upgrade struct {
	s         *Server
	run       *upgradeRun
	listeners []net.Listener // Serve's, held from accepting
	locked    bool           // s.upgradeMu is held
	carried   []carried
	state     *os.File
	stateFD   int
	lnFiles   map[string]*os.File
	lnFDs     map[string]int

	stopped, disconnected, quiesced, written time.Time
	stateBytes                               int64
	// conns are the copies of the connections carried (not served yet),
	// and connFDs their descriptors, inheritable.
	conns   []*os.File
	connFDs []int
	// taken is when, within write, the sessions' states were taken (the
	// rest is encoding and writing them).
	taken time.Time
	// gcPercent is the garbage collector's setting, off (gcOff) from the
	// write on.
	gcPercent int
	gcOff     bool
}

// prepare does everything but the exec.
func (up *upgrade) prepare(ctx context.Context, opts UpgradeOptions) error {
	s := up.s
	// Accept returns at once (a deadline in the past); Serve then waits
	// for the upgrade's outcome. Connections arriving meanwhile wait in
	// the backlog, for the new image. One accepted just before is served
	// as any connection already there: closed below, and its client
	// resumes; or carried to the new image if its client sent nothing
	// yet (see closeConnsForUpgrade).
	held := 0
	for _, l := range up.listeners {
		if d, ok := l.(interface{ SetDeadline(time.Time) error }); ok {
			_ = d.SetDeadline(time.Unix(1, 0))
			held++
		}
	}
	for {
		s.mu.Lock()
		parked := up.run.parked
		if parked >= held {
			up.run.refusing = true
		}
		s.mu.Unlock()
		if parked >= held {
			break
		}
		select {
		case <-ctx.Done():
			return xerrors.Errorf("upgrade: wait for Serve to stop accepting: %w", ctx.Err())
		case <-time.After(100 * time.Microsecond):
		}
	}
	// From the upgrade's start no session is started (see
	// startSession), and a new client accepted meanwhile would only be
	// refused, while in the backlog it waits for the new image.
	up.stopped = time.Now()
	// Sessions that are starting or ending finish first (an ending one
	// ends its connections with its own reason); none starts or ends
	// after this.
	for !s.upgradeMu.TryLock() {
		select {
		case <-ctx.Done():
			return xerrors.Errorf("upgrade: wait for sessions starting or ending: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	up.locked = true
	conns, err := s.closeConnsForUpgrade(ctx)
	if err != nil {
		return err
	}
	up.conns = conns
	up.disconnected = time.Now()
	if err := s.upgradable(); err != nil {
		return err
	}
	s.sessions.Range(func(_, v any) bool {
		sess := v.(*session)
		select {
		case <-sess.ready:
		default:
			return true // refused: it was to start after the upgrade began
		}
		if sess.err != nil {
			return true
		}
		if sc, ok := sess.rpty.(*screenSession); ok {
			// Its daemon holds the program's output: nothing to
			// quiesce here.
			sess.freeze()
			up.carried = append(up.carried, carried{sess: sess, screen: sc, fd: -1})
			return true
		}
		ps, ok := sess.rpty.(*ptySession)
		if !ok {
			return true
		}
		sess.freeze()
		c := carried{sess: sess, ps: ps, fd: -1}
		c.pause, err = ps.quiesce(ctx)
		if err != nil {
			sess.thaw()
			return false
		}
		up.carried = append(up.carried, c)
		return true
	})
	if err != nil {
		return xerrors.Errorf("upgrade: %w", err)
	}
	up.quiesced = time.Now()
	if err := up.writeState(); err != nil {
		return err
	}
	up.written = time.Now()
	for _, f := range up.conns {
		fd, err := setInheritable(f, true)
		if err != nil {
			return xerrors.Errorf("upgrade: carry a connection: %w", err)
		}
		up.connFDs = append(up.connFDs, fd)
	}
	return up.carryListeners(opts.Listeners)
}

// onEveryCPU calls f(0) to f(n-1) on as many goroutines as there are CPUs,
// and returns when all have returned.
func onEveryCPU(n int, f func(i int)) { inParallel(n, runtime.GOMAXPROCS(0), f) }

// inParallel calls f(0) to f(n-1) on up to workers goroutines, and returns
// when all have returned.
func inParallel(n, workers int, f func(i int)) {
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(n, max(1, workers)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// closeConnsForUpgrade closes every connection, attributed to
// DisconnectServerUpgrade, and waits until each handler has returned. A
// connection already ended (its session ended) is left to take its last
// output and end of stream, so that its client does not reconnect and
// start the command again; one that does not take it within a second is
// cut off.
//
// A connection Serve accepted whose client has sent nothing yet is carried
// instead (see upgradeconns.go): its socket's copy is returned, and its
// client sees nothing.
func (s *Server) closeConnsForUpgrade(ctx context.Context) ([]*os.File, error) {
	d := disconnect{reason: DisconnectServerUpgrade, detail: "the server is upgrading; reconnect"}
	taken := map[*conn]*os.File{}
	s.mu.Lock()
	for c := range s.conns {
		if f, ok := takeForCarry(c); ok {
			taken[c] = f
		}
		if c.end(d) {
			c.interrupt()
		}
	}
	s.mu.Unlock()

	grace := time.Now().Add(time.Second)
	for {
		s.mu.Lock()
		// Every close logged too: the exec would lose a line not
		// written yet.
		n := len(s.conns) + s.unlogged
		if n > 0 && time.Now().After(grace) {
			for c := range s.conns {
				c.interrupt()
			}
		}
		s.mu.Unlock()
		if n == 0 {
			var carried []*os.File
			for c, f := range taken {
				if keepCarried(c, f) {
					carried = append(carried, f)
				}
			}
			return carried, nil
		}
		select {
		case <-ctx.Done():
			for _, f := range taken {
				resetFile(f)
			}
			return nil, xerrors.Errorf("upgrade: wait for %d connections to close: %w", n, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// writeState writes every carried session's state to an inheritable
// memory file and makes their terminals inheritable.
func (up *upgrade) writeState() error {
	// The process is about to be replaced: collecting garbage now is
	// work thrown away, and the states taken (tens of MB for a thousand
	// terminals) would start a collection of the whole heap, on the CPUs
	// taking them. Collection is back on if the upgrade fails (undo).
	up.gcPercent, up.gcOff = debug.SetGCPercent(-1), true
	now := time.Now()
	st := &handoverState{}
	fd, err := unix.MemfdCreate("reconnectingpty-handover", 0) // no close-on-exec
	if err != nil {
		return xerrors.Errorf("upgrade: create the state's memory file: %w", err)
	}
	up.state, up.stateFD = os.NewFile(uintptr(fd), "reconnectingpty-handover"), fd
	// On every CPU, each session's output (read where it lies: the
	// readers are quiesced) and terminal (a copy of its scrollback and
	// screens' lines) are taken, with their checksums; then they are
	// written, in order: the bytes of the state (see handover.go).
	// (Writing each as it was taken, from every CPU, was slower.)
	type taken struct {
		ring  ringState
		held  [2][]byte
		vt    *vtState
		ended bool
	}
	states := make([]taken, len(up.carried))
	onEveryCPU(len(up.carried), func(i int) {
		t := &states[i]
		if ps := up.carried[i].ps; ps != nil {
			t.ring, t.held, t.vt, t.ended = ps.state()
			t.ring.HeldAt.Sum = crc32.Update(crc32.Checksum(t.held[0], crcTable), crcTable, t.held[1])
			if t.vt != nil {
				t.vt.TermAt.Sum = crc32.Checksum(t.vt.Term, crcTable)
			}
		}
	})
	up.taken = time.Now()
	var blobs [][]byte
	var blobLen uint64
	place := func(r *byteRange, parts ...[]byte) {
		r.Off = blobLen
		for _, p := range parts {
			if len(p) > 0 {
				blobs = append(blobs, p)
				r.Len += uint64(len(p))
			}
		}
		blobLen += r.Len
	}
	for i := range states {
		t := &states[i]
		if t.ended || up.carried[i].ps == nil {
			continue
		}
		place(&t.ring.HeldAt, t.held[0], t.held[1])
		if t.vt != nil {
			place(&t.vt.TermAt, t.vt.Term)
			t.vt.Term = nil
		}
	}
	// Through a buffer of 1 MiB: with one vector a range, pwritev took
	// several times as long (BenchmarkUpgrade: 300-400 ms against 40-50
	// for 48 MB).
	if _, err := up.state.Seek(int64(handoverHeaderLen), io.SeekStart); err != nil {
		return xerrors.Errorf("upgrade: write the state: %w", err)
	}
	w := bufio.NewWriterSize(up.state, 1<<20)
	for _, b := range blobs {
		_, _ = w.Write(b)
	}
	if err := w.Flush(); err != nil {
		return xerrors.Errorf("upgrade: write the state: %w", err)
	}
	kept := up.carried[:0]
	for i, c := range up.carried {
		if c.screen != nil {
			scr, fd, ended, err := c.screen.screenCarry()
			if ended || err != nil {
				c.sess.thaw()
				if err != nil {
					up.carried = append(kept, up.carried[i+1:]...)
					return xerrors.Errorf("upgrade: %w", err)
				}
				continue
			}
			c.fd = fd
			kept = append(kept, c)
			ss := c.sess.state(now)
			ss.PID, ss.PTY, ss.Screen = c.screen.pid(), fd, scr
			ss.LastOutput = c.screen.lastOutput()
			st.Sessions = append(st.Sessions, ss)
			continue
		}
		ring, vt, ended := states[i].ring, states[i].vt, states[i].ended
		if ended {
			// Its process is reaped already: nothing to carry.
			c.ps.resume(c.pause)
			c.sess.thaw()
			continue
		}
		fd, err := setInheritable(c.ps.ptmx, true)
		if err != nil {
			c.ps.resume(c.pause)
			c.sess.thaw()
			up.carried = append(kept, up.carried[i+1:]...)
			return xerrors.Errorf("upgrade: %w", err)
		}
		c.fd = fd
		kept = append(kept, c)
		ss := c.sess.state(now)
		ss.PID, ss.PTY, ss.Ring, ss.VT = c.ps.pid(), fd, ring, vt
		ss.LastOutput = c.ps.lastOutput()
		if d, ok := c.ps.closing(); ok {
			ss.Closing, ss.CloseReason, ss.CloseDetail = true, d.reason, d.detail
		}
		st.Sessions = append(st.Sessions, ss)
	}
	up.carried = kept
	st.Written = time.Now()
	// The description after the bytes, then the header.
	meta, err := handoverMeta(st)
	if err != nil {
		return xerrors.Errorf("upgrade: %w", err)
	}
	hdr := appendHandoverHeader(nil, uint64(len(meta)), blobLen, crc32.Checksum(meta, crcTable))
	if err := pwriteAll(fd, [][]byte{meta}, int64(handoverHeaderLen)+int64(blobLen)); err != nil {
		return xerrors.Errorf("upgrade: write the state: %w", err)
	}
	if err := pwriteAll(fd, [][]byte{hdr}, 0); err != nil {
		return xerrors.Errorf("upgrade: write the state: %w", err)
	}
	up.stateBytes = int64(handoverHeaderLen) + int64(blobLen) + int64(len(meta))
	return nil
}

// pwriteAll writes parts to fd at off.
func pwriteAll(fd int, parts [][]byte, off int64) error {
	const maxVecs = 1024 // IOV_MAX
	for {
		for len(parts) > 0 && len(parts[0]) == 0 {
			parts = parts[1:]
		}
		if len(parts) == 0 {
			return nil
		}
		n, err := unix.Pwritev(fd, parts[:min(len(parts), maxVecs)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		off += int64(n)
		for n > 0 {
			k := min(n, len(parts[0]))
			parts[0] = parts[0][k:]
			n -= k
			if len(parts[0]) == 0 {
				parts = parts[1:]
			}
		}
	}
}

// carryListeners makes an inheritable copy of each named listener.
func (up *upgrade) carryListeners(ls map[string]net.Listener) error {
	up.lnFiles, up.lnFDs = map[string]*os.File{}, map[string]int{}
	for name, l := range ls {
		fl, ok := l.(interface{ File() (*os.File, error) })
		if !ok {
			return xerrors.Errorf("upgrade: listener %q (%T) has no File method to carry it with", name, l)
		}
		f, err := fl.File()
		if err != nil {
			return xerrors.Errorf("upgrade: listener %q: %w", name, err)
		}
		up.lnFiles[name] = f
		fd, err := setInheritable(f, true)
		if err != nil {
			return xerrors.Errorf("upgrade: listener %q: %w", name, err)
		}
		up.lnFDs[name] = fd
	}
	return nil
}

// env is the new image's environment: env with HandoverEnv set.
func (up *upgrade) env(env []string, now time.Time) []string {
	h := handoverEnv{state: up.stateFD, listeners: up.lnFDs, execAt: now, conns: up.connFDs}
	for _, c := range up.carried {
		h.sessions = append(h.sessions, envSession{pid: c.pid(), pty: c.fd})
	}
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, HandoverEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, HandoverEnv+"="+h.String())
}

// undo puts everything back as it was before the upgrade began.
func (up *upgrade) undo() {
	s := up.s
	if up.gcOff {
		debug.SetGCPercent(up.gcPercent)
	}
	for _, f := range up.lnFiles {
		_ = f.Close()
	}
	// Their clients reconnect to this image, as the others do.
	for _, f := range up.conns {
		resetFile(f)
	}
	if up.state != nil {
		_ = up.state.Close()
	}
	for _, c := range up.carried {
		if c.screen != nil {
			if c.fd >= 0 {
				c.screen.uncarry()
			}
			c.sess.thaw()
			continue
		}
		if c.fd >= 0 {
			_, _ = setInheritable(c.ps.ptmx, false)
		}
		c.ps.resume(c.pause)
		c.sess.thaw()
	}
	if up.locked {
		s.upgradeMu.Unlock()
	}
	for _, l := range up.listeners {
		if d, ok := l.(interface{ SetDeadline(time.Time) error }); ok {
			_ = d.SetDeadline(time.Time{})
		}
	}
	s.mu.Lock()
	s.upgrading = nil
	s.mu.Unlock()
	close(up.run.failed)
}

// exec executes the new image from the thread that started the sessions'
// processes: each was started with a parent-death signal, which the
// kernel sends when the thread that forked it exits, and an exec ends
// every thread but the one that calls it.
func (s *Server) exec(path string, args, env []string) error {
	s.mu.Lock()
	st := s.starter
	s.mu.Unlock()
	if st == nil {
		return syscall.Exec(path, args, env)
	}
	return st.exec(path, args, env)
}

// waitUpgrade is Serve's: when an upgrade holds accepting, it waits for
// the upgrade to fail (it never returns if it succeeds) or ctx to end, and
// reports true; false when no upgrade is under way.
func (s *Server) waitUpgrade(ctx context.Context) bool {
	s.mu.Lock()
	u := s.upgrading
	if u != nil {
		u.parked++
	}
	s.mu.Unlock()
	if u == nil {
		return false
	}
	select {
	case <-u.failed:
	case <-ctx.Done():
	}
	s.mu.Lock()
	u.parked--
	s.mu.Unlock()
	return true
}
