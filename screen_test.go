package reconnectingpty

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// requireScreen skips a test on a machine without GNU screen.
func requireScreen(t testing.TB) {
	t.Helper()
	if _, ok := lookScreen("screen"); !ok {
		t.Skip("screen not installed: apt-get install screen")
	}
}

// expectPrompt waits for bash's default prompt, root's or anyone else's.
func expectPrompt(tc *testClient) {
	tc.t.Helper()
	tc.waitFor("a prompt", shortWait, func(out string, _ bool) bool {
		return strings.HasSuffix(out, "$ ") || strings.HasSuffix(out, "# ")
	})
}

// screenSessionFor returns the screen session behind id, failing the test
// if it is not a live screen session.
func screenSessionFor(t *testing.T, ts *testServer, id uuid.UUID) *screenSession {
	t.Helper()
	r := backendOf(t, ts, id)
	ss, ok := r.(*screenSession)
	if !ok {
		t.Fatalf("session %s has backend %T, want screen", id, r)
	}
	return ss
}

func TestScreenSharedEchoAndReattach(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	ts := newTestServer(t, BackendScreen, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	expectPrompt(a)
	screenSessionFor(t, ts, id) // the backend really is screen
	b := ts.connect(Init{ID: id, Command: "ignored for a live session"})
	a.typeLine("echo shared-$((6*7))")
	a.expect("shared-42")
	b.expect("shared-42")

	// One screen client per connection, plus the daemon; detaching one
	// connection ends its client only.
	waitScreenProcesses(t, ts.marker, 3)
	a.close()
	waitScreenProcesses(t, ts.marker, 2)
	b.typeLine("echo still-$((1+1))")
	b.expect("still-2")
	b.close()

	// A reattach repaints the screen, earlier output included.
	c := ts.connect(Init{ID: id, Command: testShell})
	c.expect("shared-42")
	c.expect("still-2")
	closes := ts.waitForCloses(2)
	for _, cl := range closes {
		requireClose(t, cl, DisconnectGraceful)
	}
}

func TestScreenExitEndsEveryConnection(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	ts := newTestServer(t, BackendScreen, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	expectPrompt(a)
	b := ts.connect(Init{ID: id})
	b.typeLine("echo bye-$((2*3)); exit 7")
	for _, tc := range []*testClient{a, b} {
		out := tc.expectEOF()
		if !strings.Contains(out, "bye-6") {
			t.Fatalf("output before EOF lacks the last line: %q", tail(out))
		}
		if strings.Contains(out, "screen is terminating") {
			t.Fatalf("screen's goodbye reached the client: %q", tail(out))
		}
	}
	closes := ts.waitForCloses(2)
	for _, cl := range closes {
		requireClose(t, cl, DisconnectProcessExited)
		if cl["exit_code"] != 7 {
			t.Fatalf("exit_code = %v, want 7", cl["exit_code"])
		}
	}
	// The report hook runs just after the close is logged.
	got := ts.reports.snapshot()
	for deadline := time.Now().Add(shortWait); len(got) < 2 && time.Now().Before(deadline); got = ts.reports.snapshot() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 2 || got[0] != "7 process_exited" || got[1] != "7 process_exited" {
		t.Fatalf("reports = %v", got)
	}
	// The next connection with that ID gets a fresh session.
	c := ts.connect(Init{ID: id, Command: "echo fresh-$((3*3))"})
	if out := c.expectEOF(); !strings.Contains(out, "fresh-9") {
		t.Fatalf("fresh session output: %q", out)
	}
}

func TestScreenOneShotHasNoChrome(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	ts := newTestServer(t, BackendScreen, Config{})
	c := ts.connect(Init{ID: uuid.New(), Command: "printf 'first\\nsecond\\n'; exit 3"})
	out := c.expectEOF()
	if !strings.Contains(out, "first\r\nsecond\r\n") {
		t.Fatalf("output %q lacks the command's lines", out)
	}
	// Everything after the program's last line is screen's, and must be gone.
	if rest := out[strings.Index(out, "second\r\n")+len("second\r\n"):]; rest != "" {
		t.Fatalf("screen chrome after the output: %q", rest)
	}
	// Before it, screen only initialises and clears the terminal: no text,
	// no blank lines padding the output down.
	head := out[:strings.Index(out, "first")]
	if strings.ContainsAny(head, "\r\n") || strings.Contains(head, "screen") {
		t.Fatalf("screen chrome before the output: %q", head)
	}
	cl := ts.waitForCloses(1)[0]
	requireClose(t, cl, DisconnectProcessExited)
	if cl["exit_code"] != 3 {
		t.Fatalf("exit_code = %v, want 3", cl["exit_code"])
	}
}

func TestScreenUTF8WithCLocale(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "LANG" && k != "LC_ALL" && k != "LC_CTYPE" {
			env = append(env, kv)
		}
	}
	env = append(env, "LANG=C")
	ts := newTestServer(t, BackendScreen, Config{})
	ts.srv.cfg.Commander = markedCommander{marker: ts.marker, env: env}
	c := ts.connect(Init{ID: uuid.New(), Command: `printf '\342\235\257 caf\303\251 \344\270\255\n'`})
	if out := c.expectEOF(); !strings.Contains(out, "❯ café 中") {
		t.Fatalf("glyphs mangled: %q", out)
	}
}

// TestScreenCommandKeyReachesProgram checks that Ctrl-], screen's command
// key here, and Ctrl-A both arrive as typed.
func TestScreenCommandKeyReachesProgram(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	ts := newTestServer(t, BackendScreen, Config{})
	c := ts.connect(Init{ID: uuid.New(), Command: "od -An -tx1 -N4"})
	c.send(Request{Data: "\x1d]\x01\r"})
	if out := c.expectEOF(); !strings.Contains(out, "1d 5d 01 0a") {
		t.Fatalf("input was not passed through: %q", out)
	}
}

func TestScreenTimeoutAndShutdownLeaveNothing(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	ts := newTestServer(t, BackendScreen, Config{Timeout: 300 * time.Millisecond})

	// A session nobody is attached to times out, daemon and all.
	idle := ts.connect(Init{ID: uuid.New(), Command: testShell})
	expectPrompt(idle)
	idle.typeLine("sleep 1000 & echo bg-$((5*5))")
	idle.expect("bg-25")
	idle.close()
	requireClose(t, ts.waitForCloses(1)[0], DisconnectGraceful)
	deadline := time.Now().Add(shortWait)
	for len(markedProcesses(ts.marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("timed-out session left processes: %v", markedProcesses(ts.marker))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Shutdown ends attached sessions, flushes, and removes the directory.
	a := ts.connect(Init{ID: uuid.New(), Command: testShell})
	expectPrompt(a)
	a.typeLine("sleep 1000 & echo bg-$((5*5))")
	a.expect("bg-25")
	ts.srv.screen.mu.Lock()
	dir := ts.srv.screen.dir
	ts.srv.screen.mu.Unlock()
	if dir == "" {
		t.Fatal("no screen directory while a session runs")
	}
	if err := ts.srv.Close(); err != nil {
		t.Fatal(err)
	}
	a.expectEOF()
	closes := ts.waitForCloses(2)
	requireClose(t, closes[1], DisconnectServerShutdown)
	ts.requireNoProcesses()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("screen directory %s left behind: %v", dir, err)
	}
}

// TestScreenReattachRepaintsFullScreenProgram draws vim, detaches, makes vim
// write more than the replay buffer holds without redrawing its first
// line, and reattaches: screen repaints vim's current screen, first line
// included, which a replay of the last 4 KiB could not.
func TestScreenReattachRepaintsFullScreenProgram(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	vim, err := exec.LookPath("vim.tiny")
	if err != nil {
		t.Skip("vim.tiny not installed")
	}
	const bufferSize = 4 << 10
	ts := newTestServer(t, BackendScreen, Config{BufferSize: bufferSize})
	file := filepath.Join(t.TempDir(), "doc.txt")
	var doc strings.Builder
	doc.WriteString("HEADER-MARKER first line\n")
	for i := 2; i <= 15; i++ {
		doc.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	if err := os.WriteFile(file, []byte(doc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: vim + " -u NONE -i NONE -N -n " + file})
	a.expect("HEADER-MARKER")
	a.expect("line 15")
	a.close()

	// With nobody attached, type into vim through screen itself: cursor
	// moves between lines 1 and 2 and then a new last line.
	ss := screenSessionFor(t, ts, id)
	vimPID := windowProcess(t, ss, "vim")
	before := writtenBytes(t, vimPID)
	for range 8 {
		if err := ss.command("-X", "stuff", strings.Repeat("jk", 250)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.command("-X", "stuff", "GoTAIL-MARKER"); err != nil {
		t.Fatal(err)
	}

	b := ts.connect(Init{ID: id, Width: 80, Height: 24})
	out := b.expect("TAIL-MARKER")
	if !strings.Contains(out, "HEADER-MARKER") {
		// The repaint may come in pieces; wait for the rest of it.
		b.expect("HEADER-MARKER")
	}
	t.Logf("vim wrote %d bytes while detached", writtenBytes(t, vimPID)-before)
	if written := writtenBytes(t, vimPID) - before; written <= bufferSize {
		t.Fatalf("vim wrote only %d bytes while detached; the test needs more than %d", written, bufferSize)
	}
}

// waitScreenProcesses polls until exactly n screen processes (the daemon
// and the clients) carry the test's marker.
func waitScreenProcesses(t *testing.T, marker string, n int) {
	t.Helper()
	deadline := time.Now().Add(shortWait)
	for {
		var got []int
		for _, pid := range markedProcesses(marker) {
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			if strings.TrimSpace(string(comm)) == "screen" {
				got = append(got, pid)
			}
		}
		if len(got) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("screen processes %v, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// windowProcess finds the process in the session's window whose command
// name contains name.
func windowProcess(t *testing.T, ss *screenSession, name string) int {
	t.Helper()
	b, err := os.ReadFile(ss.pidFile)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || !strings.Contains(string(comm), name) {
			continue
		}
		for _, p := range readSessions()[sid] {
			if p.pid == pid {
				return pid
			}
		}
	}
	t.Fatalf("no %s in the window's session %d", name, sid)
	return 0
}

// writtenBytes is the number of bytes pid has written, from /proc/PID/io.
func writtenBytes(t *testing.T, pid int) int {
	t.Helper()
	io, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(io), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no wchar in %q", io)
	return 0
}

func TestScreenChromeFilter(t *testing.T) {
	t.Parallel()
	goodbye := "\x1b[?1l\x1b>\x1b[24;1H" + screenChrome
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
	}{
		{"one chunk", []string{"out\r\n" + goodbye}, "out\r\n"},
		{"goodbye alone", []string{"out\r\n", goodbye}, "out\r\n"},
		{"split goodbye", []string{"out\r\n\x1b[?1l\x1b>\x1b[24;1H\r\n[scr", "een is terminating]\r\n"}, "out\r\n"},
		{"goodbye in two writes", []string{"out\r\n", "\x1b[?1l\x1b>\x1b[24;1H\r\n", "[screen is terminating]\r\n"}, "out\r\n"},
		{"cursor already home", []string{"out\r\n", "[screen is terminating]\r\n"}, "out\r\n"},
		{"program prints it, then more", []string{"a" + screenChrome, "b"}, "a" + screenChrome + "b"},
		{"prefix at the end", []string{"x\r\n[scr"}, "x\r\n[scr"},
		{"plain lines", []string{"a\r\n", "b\r\n"}, "a\r\nb\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f chromeFilter
			var got bytes.Buffer
			for _, c := range tc.chunks {
				got.Write(f.push([]byte(c)))
			}
			got.Write(f.end())
			if got.String() != tc.want {
				t.Fatalf("got %q, want %q", got.String(), tc.want)
			}
		})
	}
	// Output that ends in a line ending is not held back; an escape
	// sequence before it is, until flushed.
	var f chromeFilter
	if got := f.push([]byte("prompt\r\n")); string(got) != "prompt\r\n" {
		t.Fatalf("held back a line ending: %q", got)
	}
	if got := f.push([]byte("x\x1b[0m\r\n")); string(got) != "x" || !f.holding() {
		t.Fatalf("got %q, holding %v", got, f.holding())
	}
	if got := f.flush(); string(got) != "\x1b[0m\r\n" {
		t.Fatalf("flush = %q", got)
	}
}

func TestScreenSessionNamesAreShortAndUnique(t *testing.T) {
	t.Parallel()
	srv, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	id := uuid.New()
	dir, n1, err := srv.screen.prepare(id)
	if err != nil {
		t.Fatal(err)
	}
	_, n2, err := srv.screen.prepare(id)
	if err != nil {
		t.Fatal(err)
	}
	if n1 == n2 {
		t.Fatalf("two sessions named %q", n1)
	}
	if st, err := os.Stat(filepath.Join(dir, "sock")); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v %v", st, err)
	}
	// PID up to 7 digits, a dot, the name.
	if sock := filepath.Join(dir, "sock", "4194304."+n2); len(sock) > 100 {
		t.Fatalf("socket path %q is %d bytes", sock, len(sock))
	}
	srv.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s survives shutdown", dir)
	}
}

// backendOf returns the backend behind the live session id.
func backendOf(t *testing.T, ts *testServer, id uuid.UUID) rpty {
	t.Helper()
	v, ok := ts.srv.sessions.Load(id)
	if !ok {
		t.Fatalf("no session %s", id)
	}
	sess := v.(*session)
	<-sess.ready
	return sess.rpty
}

// TestScreenUnavailableFallsBackToBuffered asks for screen where there is
// none: the client gets a working buffered session, the server warns once
// and counts every fallback.
func TestScreenUnavailableFallsBackToBuffered(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendScreen, Config{ScreenPath: "/nonexistent/screen"})
	for i := range 2 {
		id := uuid.New()
		c := ts.connect(Init{ID: id, Command: testShell, BackendType: string(BackendScreen)})
		c.typeLine(`echo fallback-""` + strconv.Itoa(i))
		c.expect("fallback-" + strconv.Itoa(i))
		if r := backendOf(t, ts, id); r == nil {
			t.Fatal("no backend")
		} else if ps, ok := r.(*ptySession); !ok || ps.backend != string(BackendBuffered) {
			t.Fatalf("backend %T, want buffered", r)
		}
	}
	if got := testutil.ToFloat64(ts.srv.metrics.errors.WithLabelValues(errorTypeScreenUnavailable)); got != 2 {
		t.Fatalf("screen_unavailable errors = %v, want 2", got)
	}
	ts.logs.mu.Lock()
	warnings := 0
	for _, e := range ts.logs.entries {
		if strings.Contains(e.Message, "screen is not installed") {
			warnings++
		}
	}
	ts.logs.mu.Unlock()
	if warnings != 1 {
		t.Fatalf("%d warnings about the missing screen, want 1", warnings)
	}
}

// TestAutoPicksVT checks that auto means vt whether or not screen is
// installed, and Config.Backend when that names another backend.
func TestAutoPicksVT(t *testing.T) {
	t.Parallel()
	_, haveScreen := lookScreen("screen")
	for _, tc := range []struct {
		name       string
		screenPath string
		def        BackendType
		want       BackendType
	}{
		{"screen installed", "", BackendAuto, BackendVT},
		{"screen missing", "/nonexistent/screen", BackendAuto, BackendVT},
		{"default buffered", "", BackendBuffered, BackendBuffered},
		{"default screen", "", BackendScreen, BackendScreen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.want == BackendScreen && !haveScreen {
				t.Skip("screen not installed: apt-get install screen")
			}
			ts := newTestServer(t, BackendAuto, Config{ScreenPath: tc.screenPath, Backend: tc.def})
			id := uuid.New()
			c := ts.connect(Init{ID: id, Command: testShell, BackendType: ""})
			c.typeLine(`echo auto-""ok`)
			c.expect("auto-ok")
			var got BackendType
			switch r := backendOf(t, ts, id).(type) {
			case *screenSession:
				got = BackendScreen
			case *ptySession:
				got = BackendType(r.backend)
			default:
				t.Fatalf("backend %T", r)
			}
			if got != tc.want {
				t.Fatalf("auto chose %s, want %s", got, tc.want)
			}
			if n := testutil.ToFloat64(ts.srv.metrics.errors.WithLabelValues(errorTypeScreenUnavailable)); n != 0 {
				t.Fatalf("auto counted %v screen_unavailable errors", n)
			}
		})
	}
}

// TestScreenLoginShell checks that an empty command still starts a login
// shell: the leading dash of argv[0] cannot pass through the wrapper, so it
// becomes -l.
func TestScreenLoginShell(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	ts := newTestServer(t, BackendScreen, Config{})
	c := ts.connect(Init{ID: uuid.New()})
	c.typeLine(`shopt -q login_shell && echo login-""shell`)
	c.expect("login-shell")
}

// TestScreenClientDeathEndsOnlyItsConnection kills one connection's screen
// client from outside: that connection is ended and attributed, the other
// and the session carry on.
func TestScreenClientDeathEndsOnlyItsConnection(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	ts := newTestServer(t, BackendScreen, Config{})
	id := uuid.New()
	a := ts.connect(Init{ID: id, Command: testShell})
	a.typeLine(`echo first-""up`)
	a.expect("first-up")
	b := ts.connect(Init{ID: id})
	b.expect("first-up")

	ss := screenSessionFor(t, ts, id)
	ss.mu.Lock()
	var victim *screenAttachment
	for att := range ss.atts {
		if victim == nil || att.client.Process.Pid > victim.client.Process.Pid {
			victim = att // the newest client is b's
		}
	}
	ss.mu.Unlock()
	if err := victim.client.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	b.expectEOF()
	cl := ts.waitForCloses(1)[0]
	requireClose(t, cl, DisconnectStartFailed)
	if got := testutil.ToFloat64(ts.srv.metrics.errors.WithLabelValues(errorTypeScreen)); got != 1 {
		t.Fatalf("screen errors = %v, want 1", got)
	}
	a.typeLine(`echo still-""up`)
	a.expect("still-up")
}

// TestScreenTwoServersDoNotCollide runs the same session ID on two servers
// of one host: each has its own directory, daemon and shell.
func TestScreenTwoServersDoNotCollide(t *testing.T) {
	t.Parallel()
	requireScreen(t)
	id := uuid.New()
	one := newTestServer(t, BackendScreen, Config{})
	two := newTestServer(t, BackendScreen, Config{})
	a := one.connect(Init{ID: id, Command: testShell})
	b := two.connect(Init{ID: id, Command: testShell})
	a.typeLine(`echo pid-""$$-end`)
	b.typeLine(`echo pid-""$$-end`)
	if pa, pb := a.expectPID(), b.expectPID(); pa == pb {
		t.Fatalf("both servers attached to shell %d", pa)
	}
	if da, db := screenSessionFor(t, one, id).dir, screenSessionFor(t, two, id).dir; da == db {
		t.Fatalf("both servers use %s", da)
	}
}
