package reconnectingpty_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
	"github.com/reconnectingpty/reconnectingpty/internal/vt"
	"github.com/reconnectingpty/reconnectingpty/internal/xtermjs"
)

func itoa(n int) string { return strconv.Itoa(n) }

// floodCommand prints seq 1 1000000 in 50 pieces 200 ms apart, so that an
// upgrade soon after it starts lands in the middle of it.
const floodCommand = `for i in $(seq 0 49); do seq $((i*20000+1)) $((i*20000+20000)); sleep 0.2; done`

// floodOutput is what floodCommand's terminal shows: seq's lines, each
// ended with CR LF by the terminal.
func floodOutput() []byte {
	var b bytes.Buffer
	for i := 1; i <= 1000000; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// TestUpgrade upgrades a daemon (internal/upgraded) to a different build of
// itself in the same process, with sessions and clients, and checks what a
// user would: nothing lost, nothing repeated, the same processes.
func TestUpgrade(t *testing.T) {
	dir := t.TempDir()
	oldBin := buildUpgraded(t, dir, "old")
	newBin := buildUpgraded(t, dir, "new")

	t.Run("SessionsSurviveWithEveryByte", func(t *testing.T) {
		d := startDaemon(t, oldBin)
		type sess struct {
			name   string
			init   reconnectingpty.Init
			client *streamClient
		}
		var all []*sess
		for _, backend := range []reconnectingpty.BackendType{reconnectingpty.BackendBuffered, reconnectingpty.BackendVT} {
			for _, kind := range []string{"idle", "flood"} {
				s := &sess{name: string(backend) + "/" + kind, init: reconnectingpty.Init{
					ID: uuid.New(), Height: 24, Width: 80, BackendType: string(backend),
				}}
				if kind == "flood" {
					s.init.Command = floodCommand
				}
				s.client = dialStream(t, d.rpty, s.init)
				all = append(all, s)
			}
		}
		for _, s := range all {
			s.client.waitFor(s.name+" output", func(b []byte) bool { return len(b) > 0 })
		}
		for _, s := range all {
			if s.init.Command != "" {
				s.client.waitFor(s.name+" flood under way", func(b []byte) bool { return len(b) > 200<<10 })
			}
		}
		pids := d.pids()
		if len(pids) != len(all) {
			t.Fatalf("%d sessions before the upgrade, want %d: %+v", len(pids), len(all), d.sessions())
		}
		before := d.lineCount()
		if err := d.upgrade(newBin); err != "" {
			t.Fatalf("upgrade: %s", err)
		}
		marker, at := d.waitLineAt("MARKER new ", before)
		if want := "MARKER new PID " + itoa(d.pid); marker != want {
			t.Fatalf("the new image says %q, want %q (the same process)", marker, want)
		}
		d.waitLine("READY ", at)

		// Every session, the floods included, is in the new image with the
		// same live process.
		after := d.pids()
		for _, s := range all {
			pid, ok := after[s.init.ID]
			switch {
			case !ok:
				t.Errorf("%s: not in the new image (a flood that ended before the upgrade would not be)", s.name)
			case pid != pids[s.init.ID]:
				t.Errorf("%s: process %d, was %d", s.name, pid, pids[s.init.ID])
			case !processAlive(pid):
				t.Errorf("%s: process %d is not alive", s.name, pid)
			}
		}
		// The old image closed each client's connection as an upgrade.
		if got := d.closes(before, at, reconnectingpty.DisconnectServerUpgrade); len(got) != len(all) {
			t.Errorf("the old image logged %d server_upgrade closes, want %d:\n%s", len(got), len(all), strings.Join(d.logLines(before, at), "\n"))
		}

		want := floodOutput()
		for _, s := range all {
			if s.init.Command == "" {
				continue
			}
			s.client.waitEOF()
			got := s.client.output()
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Errorf("%s: %d bytes, want %d; first difference at %d: got %q, want %q", s.name, len(got), len(want), i,
					got[i:min(len(got), i+40)], want[i:min(len(want), i+40)])
			}
		}
		for _, s := range all {
			if s.init.Command != "" {
				continue
			}
			if _, err := s.client.c.Write([]byte("echo typed-$((6*7))\r")); err != nil {
				t.Fatal(err)
			}
			s.client.waitFor(s.name+" echo after the upgrade", func(b []byte) bool { return bytes.Contains(b, []byte("typed-42\r\n")) })
		}
		for _, s := range all {
			s.client.mu.Lock()
			resets := s.client.resets
			s.client.mu.Unlock()
			if resets != 0 {
				t.Errorf("%s: %d resets; a client resuming across an upgrade gets a delta", s.name, resets)
			}
		}

		// A client attaching to the vt shell now sees the screen of the one
		// attached all along.
		var along *streamClient
		var id uuid.UUID
		for _, s := range all {
			if s.name == "vt/idle" {
				along, id = s.client, s.init.ID
			}
		}
		along.waitQuiet(200 * time.Millisecond)
		late := dialStream(t, d.rpty, reconnectingpty.Init{ID: id, Height: 24, Width: 80, BackendType: "vt"})
		late.waitFor("the late client's screen", func(b []byte) bool { return bytes.Contains(b, []byte("typed-42")) })
		late.waitQuiet(200 * time.Millisecond)
		along.waitQuiet(200 * time.Millisecond)
		if a, l := screenOf(along.output()), screenOf(late.output()); a != l {
			t.Errorf("a late vt client's screen differs from one attached along:\nalong: %q\nlate:  %q", a, l)
		}
		// And as the web page's terminal renders them, cell for cell.
		r, err := xtermjs.Start(context.Background())
		if err != nil {
			t.Fatalf("%v", err)
		}
		defer r.Close()
		render := func(out []byte) xtermjs.State {
			st, err := r.Render(context.Background(), xtermjs.Request{Rows: 24, Cols: 80, Scrollback: 1000, Chunks: [][]byte{out}})
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			return st
		}
		for _, diff := range xtermjs.Diff(render(along.output()), render(late.output())) {
			t.Errorf("xterm.js: a late vt client differs from one attached along: %s", diff)
		}

		// The new image closed the state, and a child it starts now
		// inherits none of the handed-over descriptors.
		if fds := d.control("fds"); strings.Contains(fds, "reconnectingpty-handover") {
			t.Errorf("the new image keeps the state open: %s", fds)
		}
		fresh := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, Command: "ls /proc/self/fd | tr '\\n' ' '"})
		fresh.waitEOF()
		if got := string(fresh.output()); got != "0 1 2 3 " {
			t.Errorf("a new session's process has descriptors %q, want its standard streams and ls's own (0 1 2 3)", got)
		}
	})

	// Screen sessions cross too: their daemons are children of the
	// process, and the new image adopts their directory.
	t.Run("ScreenSessionsAnswer", func(t *testing.T) {
		if _, err := exec.LookPath("screen"); err != nil {
			t.Skip("screen is not installed")
		}
		d := startDaemon(t, oldBin)
		init := reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: "screen"}
		c := dialStream(t, d.rpty, init)
		shellPID := regexp.MustCompile(`shell-(\d+)-42`)
		if _, err := c.c.Write([]byte("echo shell-$$-$((6*7))\r")); err != nil {
			t.Fatal(err)
		}
		c.waitFor("the screen session answering", func(b []byte) bool { return shellPID.Match(b) })
		shell := shellPID.FindSubmatch(c.output())[1]
		pids := d.pids()
		before := d.lineCount()
		if err := d.upgrade(newBin); err != "" {
			t.Fatalf("upgrade: %s", err)
		}
		_, at := d.waitLineAt("MARKER new ", before)
		d.waitLine("READY ", at)
		if got := d.closes(before, at, reconnectingpty.DisconnectServerUpgrade); len(got) != 1 {
			t.Errorf("the old image logged %d server_upgrade closes, want 1", len(got))
		}
		after := d.pids()
		if pid, ok := after[init.ID]; !ok || pid != pids[init.ID] || !processAlive(pid) {
			t.Fatalf("screen daemon after the upgrade: %d (known %v), was %d", pid, ok, pids[init.ID])
		}
		// The client reconnected (screen always redraws) and the same
		// shell answers it.
		if _, err := c.c.Write([]byte("echo after-$$-$((6*7))\r")); err != nil {
			t.Fatal(err)
		}
		same := []byte("after-" + string(shell) + "-42")
		c.waitFor("the same shell answering after the upgrade", func(b []byte) bool { return bytes.Contains(b, same) })
		// A second client sees the same window.
		late := dialStream(t, d.rpty, init)
		late.waitFor("the late client's screen", func(b []byte) bool { return bytes.Contains(b, same) })
		// And the new image starts screen sessions of its own.
		fresh := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: "screen"})
		if _, err := fresh.c.Write([]byte("echo fresh-$((6*7))\r")); err != nil {
			t.Fatal(err)
		}
		fresh.waitFor("a new screen session", func(b []byte) bool { return bytes.Contains(b, []byte("fresh-42")) })
		if n := len(d.pids()); n != 2 {
			t.Errorf("%d sessions, want 2", n)
		}
	})

	// A brand-new client whose connection the old image accepted and had
	// not served yet (it sent nothing before the upgrade) is served by
	// the new image, not reset.
	t.Run("ConnectionNotServedYetIsCarried", func(t *testing.T) {
		d := startDaemon(t, oldBin)
		c := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80})
		c.waitFor("a prompt", func(b []byte) bool { return len(b) > 0 })
		quiet, err := net.Dial("tcp", d.rpty)
		if err != nil {
			t.Fatal(err)
		}
		defer quiet.Close()
		// Accepted by the old image's Serve, which waits for its init.
		time.Sleep(300 * time.Millisecond)
		before := d.lineCount()
		if err := d.upgrade(newBin); err != "" {
			t.Fatalf("upgrade: %s", err)
		}
		_, at := d.waitLineAt("MARKER new ", before)
		d.waitLine("READY ", at)
		if got := d.closes(before, at, reconnectingpty.DisconnectServerUpgrade); len(got) != 1 {
			t.Errorf("the old image logged %d server_upgrade closes, want 1 (the attached client's)", len(got))
		}
		init := reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo carried-$((6*7))"}
		if err := reconnectingpty.WriteInit(quiet, init); err != nil {
			t.Fatalf("init on the carried connection: %v", err)
		}
		_ = quiet.SetReadDeadline(time.Now().Add(30 * time.Second))
		out, err := io.ReadAll(quiet)
		if !bytes.Contains(out, []byte("carried-42")) {
			t.Fatalf("the carried connection got %q (%v), want its session's output", out, err)
		}
	})

	t.Run("UnderConnectionChurn", func(t *testing.T) {
		d := startDaemon(t, oldBin)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var problems []string
		done := 0
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					word := "churn-" + itoa(w) + "-" + itoa(i)
					problem := churnOnce(d.rpty, word)
					mu.Lock()
					if problem != "" {
						problems = append(problems, problem)
					}
					done++
					mu.Unlock()
				}
			}()
		}
		for i, bin := range []string{newBin, oldBin} {
			time.Sleep(300 * time.Millisecond)
			before := d.lineCount()
			if err := d.upgrade(bin); err != "" {
				t.Errorf("upgrade %d: %s", i+1, err)
				break
			}
			_, at := d.waitLineAt("MARKER "+strings.TrimPrefix(filepath.Base(bin), "upgraded-")+" ", before)
			d.waitLine("READY ", at)
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if done == 0 {
			t.Fatal("no session ran")
		}
		for _, p := range problems {
			t.Error(p)
		}
		t.Logf("%d sessions across 2 upgrades", done)
	})

	t.Run("NoSession", func(t *testing.T) {
		d := startDaemon(t, oldBin)
		before := d.lineCount()
		if err := d.upgrade(newBin); err != "" {
			t.Fatalf("upgrade: %s", err)
		}
		_, at := d.waitLineAt("MARKER new ", before)
		d.waitLine("READY ", at)
		c := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo fresh-$((6*7))"})
		c.waitEOF()
		if !bytes.Contains(c.output(), []byte("fresh-42")) {
			t.Fatalf("a new session after the upgrade printed %q", c.output())
		}
	})

	t.Run("TwiceInARow", func(t *testing.T) {
		d := startDaemon(t, oldBin)
		c := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: "vt"})
		c.waitFor("a prompt", func(b []byte) bool { return len(b) > 0 })
		pids := d.pids()
		for i, bin := range []string{newBin, oldBin} {
			before := d.lineCount()
			if err := d.upgrade(bin); err != "" {
				t.Fatalf("upgrade %d: %s", i+1, err)
			}
			_, at := d.waitLineAt("MARKER "+strings.TrimPrefix(filepath.Base(bin), "upgraded-")+" ", before)
			d.waitLine("READY ", at)
			word := "round-" + itoa(i+1)
			if _, err := c.c.Write([]byte("echo " + word + "-$((6*7))\r")); err != nil {
				t.Fatal(err)
			}
			c.waitFor(word, func(b []byte) bool { return bytes.Contains(b, []byte(word+"-42\r\n")) })
		}
		if after := d.pids(); !mapsEqual(after, pids) {
			t.Fatalf("sessions %v after two upgrades, were %v", after, pids)
		}
	})

	t.Run("FailedExecServesOn", func(t *testing.T) {
		d := startDaemon(t, oldBin)
		c := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: "vt"})
		c.waitFor("a prompt", func(b []byte) bool { return len(b) > 0 })
		pids := d.pids()

		// A missing program is refused before anyone is disconnected.
		if err := d.upgrade(filepath.Join(t.TempDir(), "missing")); !strings.Contains(err, "no such file") {
			t.Fatalf("upgrade to a missing program: %q, want no such file", err)
		}
		// One the kernel cannot execute fails at the exec itself, after
		// everything was carried as far as it goes.
		bogus := filepath.Join(t.TempDir(), "not-a-program")
		if err := os.WriteFile(bogus, []byte("not a program\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		before := d.lineCount()
		if err := d.upgrade(bogus); !strings.Contains(err, "exec format error") {
			t.Fatalf("upgrade to a file that is no program: %q, want exec format error", err)
		}
		if got := d.closes(before, d.lineCount(), reconnectingpty.DisconnectServerUpgrade); len(got) != 1 {
			t.Errorf("%d server_upgrade closes for the failed exec, want 1", len(got))
		}
		if after := d.pids(); !mapsEqual(after, pids) {
			t.Fatalf("sessions %v after failed upgrades, were %v", after, pids)
		}
		if _, err := c.c.Write([]byte("echo still-$((6*7))\r")); err != nil {
			t.Fatal(err)
		}
		c.waitFor("the session answering", func(b []byte) bool { return bytes.Contains(b, []byte("still-42\r\n")) })
		c.mu.Lock()
		resets := c.resets
		c.mu.Unlock()
		if resets != 0 {
			t.Errorf("%d resets after a failed upgrade; the client resumes with a delta", resets)
		}
		fresh := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo fresh-$((6*7))"})
		fresh.waitEOF()
		if !bytes.Contains(fresh.output(), []byte("fresh-42")) {
			t.Fatalf("a new session after the failed upgrade printed %q", fresh.output())
		}
	})

	for _, damage := range []struct{ how, want string }{
		{"checksum", "corrupt"},
		{"version", "format 99"},
	} {
		t.Run("RefusesState/"+damage.how, func(t *testing.T) {
			d := startDaemon(t, oldBin)
			c := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, BackendType: "vt"})
			c.waitFor("a prompt", func(b []byte) bool { return len(b) > 0 })
			pids := d.pids()
			before := d.lineCount()
			if err := d.upgrade(newBin, "UPGRADED_CORRUPT="+damage.how); err != "" {
				t.Fatalf("upgrade: %s", err)
			}
			refused := d.waitLine("INHERIT_ERROR ", before)
			if !strings.Contains(refused, damage.want) || !strings.Contains(refused, "1 sessions were ended") {
				t.Errorf("the new image says %q, want it to name %q and the ended session", refused, damage.want)
			}
			d.waitLine("READY ", before)
			for id, pid := range pids {
				if processAlive(pid) {
					t.Errorf("session %s: process %d outlived the refused state", id, pid)
				}
			}
			if got := d.sessions(); len(got) != 0 {
				t.Errorf("the new image has %d sessions, want none", len(got))
			}
			// The listener came through all the same.
			fresh := dialStream(t, d.rpty, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo fresh-$((6*7))"})
			fresh.waitEOF()
			if !bytes.Contains(fresh.output(), []byte("fresh-42")) {
				t.Fatalf("a new session after the refused state printed %q", fresh.output())
			}
		})
	}
}

// churnOnce runs a short session through a resuming client and reports
// what went wrong, if anything: its output must be its one line, once (a
// client cut off before its first byte is redrawn rather than sent the
// output: then its screen must show the line once).
func churnOnce(addr, word string) string {
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var resets atomic.Int32
	c, err := client.Dial(ctx, dial, reconnectingpty.Init{ID: uuid.New(), Height: 24, Width: 80, Command: "echo " + word + "; sleep 0.2"},
		client.Options{
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			OnReset: func() { resets.Add(1) },
		})
	if err != nil {
		return word + ": dial: " + err.Error()
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	out, err := io.ReadAll(c)
	if err != nil {
		return word + ": read: " + err.Error()
	}
	if resets.Load() > 0 {
		// The screen, not the stream: it shows the line once.
		if n := strings.Count(screenOf(out), word); n != 1 {
			return word + ": redrawn; the screen shows it " + itoa(n) + " times; output " + strconv.Quote(string(out))
		}
		return ""
	}
	if string(out) != word+"\r\n" {
		return word + ": output " + strconv.Quote(string(out))
	}
	return ""
}

// screenOf is what a terminal that was sent out shows: its snapshot.
func screenOf(out []byte) string {
	term := vt.New(24, 80, vt.Options{Scrollback: 1000})
	_, _ = term.Write(out)
	return string(term.AppendSnapshot(nil))
}

func mapsEqual(a, b map[uuid.UUID]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
