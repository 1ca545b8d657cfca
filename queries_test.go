package reconnectingpty

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty/internal/resume"
)

// queryScript asks the terminal for its primary device attributes (DA1)
// and the cursor position (DSR 6) once the file "go" exists, and writes
// the answers, or "timeout", to the file "answers". The cursor is at row
// 1, column 4 after "abc".
const queryScript = `cd "$1" || exit 1
stty raw -echo
while [ ! -e go ]; do sleep 0.05; done
printf 'abc\033[c\033[6n'
if read -r -s -d c -t 5 da && read -r -s -d R -t 5 cpr; then
	printf '%s|%s' "$da" "$cpr" > answers.tmp
else
	printf 'timeout' > answers.tmp
fi
mv answers.tmp answers
exec cat
`

// startQuerySession starts queryScript on a vt session and returns its
// directory and the connection that started it.
func startQuerySession(t *testing.T, ts *testServer, id uuid.UUID) (string, *testClient) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "query.sh")
	if err := os.WriteFile(script, []byte(queryScript), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, ts.connect(Init{ID: id, Command: "bash " + script + " " + dir})
}

// waitAnswers waits for the script's answers file.
func waitAnswers(t *testing.T, dir string) string {
	t.Helper()
	deadline := time.Now().Add(shortWait)
	for {
		data, err := os.ReadFile(filepath.Join(dir, "answers"))
		if err == nil {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatal("the program never wrote its answers")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVTAnswersQueriesWhileDetached: a program that asks on start while
// nobody is attached gets xterm's answers instead of hanging.
func TestVTAnswersQueriesWhileDetached(t *testing.T) {
	ts := newTestServer(t, BackendVT, Config{})
	id := uuid.New()
	dir, first := startQuerySession(t, ts, id)
	first.close()
	ts.waitForCloses(1)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// read -d drops the terminator: DA1 "ESC[?1;2c" reads as "ESC[?1;2".
	if got, want := waitAnswers(t, dir), "\x1b[?1;2|\x1b[1;4"; got != want {
		t.Fatalf("answers %q, want %q (DA1 as xterm, cursor at 1;4)", got, want)
	}
}

// TestVTLeavesQueriesToTheAttachedClient: while a client is attached the
// server does not answer (the client's terminal does): the query reaches
// the client, the program hears nothing from the server, and the
// client's own answer reaches the program.
func TestVTLeavesQueriesToTheAttachedClient(t *testing.T) {
	ts := newTestServer(t, BackendVT, Config{})
	id := uuid.New()
	dir, client := startQuerySession(t, ts, id)
	// The script is running (it has switched the terminal to raw) before
	// it is let go: wait for stty to be done.
	time.Sleep(500 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	client.expect("abc\x1b[c\x1b[6n")
	// No answer for a moment: had the server answered, the program would
	// have read it at once.
	time.Sleep(time.Second)
	if _, err := os.Stat(filepath.Join(dir, "answers")); err == nil {
		t.Fatalf("the program got answers while a client was attached: %q", waitAnswers(t, dir))
	}
	// The client's terminal answers.
	client.send(Request{Data: "\x1b[?62;22c\x1b[7;9R"})
	got := waitAnswers(t, dir)
	if want := "\x1b[?62;22|\x1b[7;9"; got != want {
		if strings.Contains(got, "?1;2") {
			t.Fatalf("answers %q: the server answered too", got)
		}
		t.Fatalf("answers %q, want the client's %q", got, want)
	}
}

// TestVTResumeFromNothingRedrawsWithoutQueries: a page reloaded on a vt
// session resumes from offset 0. It gets the snapshot as a reset, not the
// raw output since the start, which would carry the program's queries
// again for the new terminal to answer (vim took those answers as keys).
func TestVTResumeFromNothingRedrawsWithoutQueries(t *testing.T) {
	ts := newTestServer(t, BackendVT, Config{})
	id := uuid.New()
	first := ts.connect(Init{ID: id, Command: `printf 'asks\033[c\033[6n\033[>c\r\n'; echo shown-""once; exec cat`})
	first.expect("shown-once")
	first.close()
	ts.waitForCloses(1)

	rc := ts.dialResume(Init{ID: id}, 0)
	if rc.hdr.Mode != resume.Reset || rc.hdr.Len == 0 {
		t.Fatalf("resume from 0: header %+v, want a reset with a redraw", rc.hdr)
	}
	redraw := string(rc.readN(int(rc.hdr.Len)))
	if !strings.Contains(redraw, "shown-once") {
		t.Fatalf("redraw %q lacks the screen", redraw)
	}
	for _, q := range []string{"\x1b[c", "\x1b[6n", "\x1b[>c"} {
		if strings.Contains(redraw, q) {
			t.Fatalf("redraw %q repeats the query %q", redraw, q)
		}
	}
}

// TestVTResumeNeverRepeatsAnAnsweredQuery: a client that drops, and comes
// back from an offset before a query the server answered meanwhile, gets
// a redraw, not the output with the query again (its terminal would
// answer it a second time, and the program read that as typed keys). A
// client resuming from after the query gets its delta as usual.
func TestVTResumeNeverRepeatsAnAnsweredQuery(t *testing.T) {
	ts := newTestServer(t, BackendVT, Config{})
	id := uuid.New()
	dir := t.TempDir()
	script := filepath.Join(dir, "query.sh")
	if err := os.WriteFile(script, []byte("printf 'before-query\\n'\n"+queryScript), 0o600); err != nil {
		t.Fatal(err)
	}
	first := ts.dialResume(Init{ID: id, Command: "bash " + script + " " + dir}, 0)
	if first.hdr.Mode != resume.Delta {
		t.Fatalf("a new session's first connection got %+v, want a delta from 0", first.hdr)
	}
	offset := uint64(len(first.readUntil("before-query\r\n")))
	_ = first.conn.Close()
	ts.waitForCloses(1)

	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := waitAnswers(t, dir); got != "\x1b[?1;2|\x1b[2;4" { // abc on row 2
		t.Fatalf("answers %q, want the server's while nobody is attached", got)
	}

	back := ts.dialResume(Init{ID: id}, offset)
	if back.hdr.Mode != resume.Reset {
		t.Fatalf("resume from %d, before the answered query: header %+v, want a reset", offset, back.hdr)
	}
	redraw := string(back.readN(int(back.hdr.Len)))
	if !strings.Contains(redraw, "abc") || strings.Contains(redraw, "\x1b[c") || strings.Contains(redraw, "\x1b[6n") {
		t.Fatalf("redraw %q: want the screen (abc) without the queries", redraw)
	}
	live := back.hdr.Offset
	_ = back.conn.Close()
	ts.waitForCloses(2)

	after := ts.dialResume(Init{ID: id}, live)
	if after.hdr.Mode != resume.Delta || after.hdr.Offset != live {
		t.Fatalf("resume from %d, after the query: header %+v, want a delta from there", live, after.hdr)
	}
}
