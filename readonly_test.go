package reconnectingpty

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitCounter polls a counter until it reaches want.
func waitCounter(t *testing.T, what string, get func() float64, want float64) {
	t.Helper()
	deadline := time.Now().Add(shortWait)
	for get() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", what, get(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := get(); got != want {
		t.Fatalf("%s = %v, want exactly %v", what, got, want)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	for _, backend := range backendsUnderTest(t) {
		t.Run(string(backend), func(t *testing.T) {
			t.Parallel()
			testReadOnlyInputNeverReachesTheProgram(t, backend)
		})
	}
}

// testReadOnlyInputNeverReachesTheProgram floods a busy session with a
// megabyte of input and resizes from read-only connections that attach
// and detach while a writable one types, each sending its init and input
// in one write, so the input is there before the attach is. The program
// records every byte of its input; it must get exactly the writable
// connection's.
func testReadOnlyInputNeverReachesTheProgram(t *testing.T, backend BackendType) {
	ts := newTestServer(t, backend, Config{})
	id := uuid.New()
	got := filepath.Join(t.TempDir(), "input")
	// Raw mode, so every byte reaches cat as it was sent; a background
	// loop keeps the output busy meanwhile.
	cmd := fmt.Sprintf(`stty raw -echo; (while :; do echo busy; sleep 0.005; done) & exec cat > %s`, got)
	w := ts.connect(Init{ID: id, Command: cmd})
	w.expect("busy")

	const (
		viewers  = 8
		rounds   = 2
		requests = 8
		size     = 1 << 20 / (viewers * rounds * requests) // 1 MiB in all
	)
	flood := func(i int) []byte {
		var b bytes.Buffer
		init := Init{ID: id, Height: 5, Width: 5, BackendType: string(backend)}
		if err := WriteInit(&b, init); err != nil {
			t.Error(err)
		}
		data := strings.Repeat(string(rune('A'+i)), size-1) + "\r"
		for range requests {
			if err := WriteRequest(&b, Request{Data: data}); err != nil {
				t.Error(err)
			}
			if err := WriteRequest(&b, Request{Height: 3, Width: 7}); err != nil {
				t.Error(err)
			}
		}
		return b.Bytes()
	}

	var want strings.Builder
	var wg sync.WaitGroup
	for i := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				client, server := net.Pipe()
				ts.wg.Add(1)
				go func() {
					defer ts.wg.Done()
					_ = ts.srv.ServeConnWith(context.Background(), server, ConnOptions{ReadOnly: true})
				}()
				// Output is read (and dropped) so the viewer is never
				// cut off as a slow consumer.
				drained := make(chan struct{})
				go func() {
					defer close(drained)
					_, _ = bytes.NewBuffer(nil).ReadFrom(client)
				}()
				if _, err := client.Write(flood(i)); err != nil {
					t.Errorf("viewer %d: %v", i, err)
				}
				// Half a hang-up: net.Pipe has no CloseWrite, so wait for
				// the server to have taken every request, then close.
				_ = client.Close()
				<-drained
			}
		}()
	}
	// The writable connection types all the while.
	for n := 0; n < 50; n++ {
		s := fmt.Sprintf("w%d;", n)
		w.send(Request{Data: s})
		want.WriteString(s)
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	ignored := ts.srv.metrics.readOnlyIgnored
	waitCounter(t, "ignored read-only input", func() float64 { return testutil.ToFloat64(ignored.WithLabelValues("input")) }, viewers*rounds*requests)
	waitCounter(t, "ignored read-only resizes", func() float64 { return testutil.ToFloat64(ignored.WithLabelValues("resize")) }, viewers*rounds*requests)

	w.send(Request{Data: "END"})
	want.WriteString("END")
	deadline := time.Now().Add(shortWait)
	var input []byte
	for {
		input, _ = os.ReadFile(got)
		if bytes.HasSuffix(input, []byte("END")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if string(input) != want.String() {
		t.Fatalf("the program got %d bytes of input, want the writable connection's %d: ...%q", len(input), want.Len(), input[max(0, len(input)-200):])
	}
	if info, ok := ts.session(id); !ok || info.Height != 24 || info.Width != 80 {
		t.Errorf("after the viewers' resizes the session is %dx%d (listed=%v), want 24x80", info.Height, info.Width, ok)
	}
	// Logged once per connection, not once per request.
	n := 0
	ts.logs.mu.Lock()
	for _, e := range ts.logs.entries {
		if e.Message == "input from a read-only connection ignored" {
			n++
		}
	}
	ts.logs.mu.Unlock()
	if n != viewers*rounds {
		t.Errorf("%d log lines about ignored input, want one per read-only connection (%d)", n, viewers*rounds)
	}
}

// TestReadOnlyIsTheEmbeddersCall: the Config hook sees the init and the
// connection; combined with ServeConnWith the stricter wins; nothing
// the client sends makes it writable.
func TestReadOnlyIsTheEmbeddersCall(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	ts := newTestServer(t, BackendBuffered, Config{
		ConnOptions: func(init Init, nc net.Conn) ConnOptions {
			mu.Lock()
			seen = append(seen, init.ID.String()+" "+nc.RemoteAddr().String())
			mu.Unlock()
			return ConnOptions{ReadOnly: init.ContainerUser == "viewer"}
		},
	})
	id := uuid.New()
	w := ts.connect(Init{ID: id, Command: testShell})
	w.typeLine(`echo ready-""now`)
	w.expect("ready-now")
	byHook := ts.connect(Init{ID: id, ContainerUser: "viewer"})
	byCaller := ts.connectWith(Init{ID: id}, ConnOptions{ReadOnly: true})
	for _, v := range []*testClient{byHook, byCaller} {
		v.expect("ready-now")
		v.typeLine(`echo leaked-""input`)
		v.send(Request{Height: 10, Width: 10})
	}
	waitCounter(t, "ignored input", func() float64 {
		return testutil.ToFloat64(ts.srv.metrics.readOnlyIgnored.WithLabelValues("input"))
	}, 2)
	w.typeLine(`echo size=$(stty size)=end`)
	out := w.expect("size=24 80=end")
	if strings.Contains(out, "leaked") {
		t.Fatalf("a read-only connection's input reached the shell:\n%q", tail(out))
	}
	info, _ := ts.session(id)
	if info.Connections != 3 || info.ReadOnly != 2 {
		t.Errorf("listed with %d connections, %d read-only; want 3 and 2", info.Connections, info.ReadOnly)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || !strings.HasPrefix(seen[0], id.String()+" pipe") {
		t.Errorf("the hook saw %q", seen)
	}
}

// TestReadOnlyNeverStartsASession: a viewer naming no live session is told
// it ended, and no process is started.
func TestReadOnlyNeverStartsASession(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, BackendBuffered, Config{})
	v := ts.connectWith(Init{ID: uuid.New(), Command: testShell}, ConnOptions{ReadOnly: true})
	if out := v.expectEOF(); out != "" {
		t.Errorf("a viewer of nothing got output %q", out)
	}
	c := ts.waitForCloses(1)[0]
	requireClose(t, c, DisconnectStartFailed)
	if !strings.Contains(fmt.Sprint(c["disconnect_detail"]), "read-only") {
		t.Errorf("detail %q does not say why", c["disconnect_detail"])
	}
	if n := len(ts.srv.Sessions()); n != 0 {
		t.Errorf("%d sessions listed", n)
	}
	if pids := markedProcesses(ts.marker); len(pids) != 0 {
		t.Errorf("processes started for a viewer: %v", pids)
	}
}

var sizeRE = regexp.MustCompile(`size=(\d+ \d+)=end`)

// expectSize asks the shell for its terminal size until it answers want.
func (tc *testClient) expectSize(want string) {
	tc.t.Helper()
	tc.waitUntil("size "+want, shortWait, func() { tc.typeLine(`echo size=$(stty size)=end`) }, func(out string) bool {
		m := sizeRE.FindAllStringSubmatch(out, -1)
		return len(m) > 0 && m[len(m)-1][1] == want
	})
}

// TestSizePolicies: two writable connections of different sizes and a
// read-only one, under each policy; the size follows the policy, the
// viewer never counts, and it is recomputed when a connection leaves.
func TestSizePolicies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy                  SizePolicy
		both, afterResize, left string
	}{
		// A is 30x100, then B attaches at 40x80, then A resizes to 35x90;
		// then B leaves.
		{SizeLatest, "40 80", "35 90", "35 90"},
		{SizeSmallest, "30 80", "35 80", "35 90"},
		{SizeLargest, "40 100", "40 90", "35 90"},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, BackendBuffered, Config{SizePolicy: tc.policy})
			id := uuid.New()
			a := ts.connect(Init{ID: id, Command: testShell, Height: 30, Width: 100})
			a.expectSize("30 100")
			b := ts.connect(Init{ID: id, Height: 40, Width: 80})
			a.expectSize(tc.both)
			v := ts.connectWith(Init{ID: id, Height: 50, Width: 200}, ConnOptions{ReadOnly: true})
			v.send(Request{Height: 60, Width: 220})
			waitCounter(t, "ignored resizes", func() float64 {
				return testutil.ToFloat64(ts.srv.metrics.readOnlyIgnored.WithLabelValues("resize"))
			}, 1)
			a.expectSize(tc.both)
			a.send(Request{Height: 35, Width: 90})
			a.expectSize(tc.afterResize)
			b.close()
			// B is gone before A goes too (under latest, A's size is the
			// session's already, so B's leaving shows in no size).
			ts.waitForCloses(1)
			a.expectSize(tc.left)
			if info, _ := ts.session(id); fmt.Sprintf("%d %d", info.Height, info.Width) != tc.left {
				t.Errorf("listed at %dx%d, want %s", info.Height, info.Width, tc.left)
			}
			// With only the viewer left, the size stays.
			a.close()
			v.expect("size=" + tc.left + "=end")
			if info, _ := ts.session(id); fmt.Sprintf("%d %d", info.Height, info.Width) != tc.left {
				t.Errorf("with only a viewer, listed at %dx%d, want %s", info.Height, info.Width, tc.left)
			}
		})
	}
}
