package reconnectingpty

import (
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// heapInUse is the live Go heap after a full collection, in bytes.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// readBytes is how many bytes pid has read, from /proc/PID/io.
func readBytes(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// hostileRequest is one client's request of size bytes; RPTY_HOSTILE_MIB
// overrides size (the figure is 4 MiB; the default keeps the test
// short under the race detector, where PTY input runs at a few MB/s).
func hostileRequest(t *testing.T, size int) []byte {
	if v := os.Getenv("RPTY_HOSTILE_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("RPTY_HOSTILE_MIB=%q: %v", v, err)
		}
		size = n << 20
	}
	return []byte(`{"data":"` + strings.Repeat("x", size-len(`{"data":""}`)) + `"}`)
}

// startHostileTarget starts a session running command, which prints
// ready, and returns its ID and its process.
func startHostileTarget(t *testing.T, ts *testServer, addr, command string) (uuid.UUID, int) {
	t.Helper()
	before := map[int]bool{}
	for _, pid := range markedProcesses(ts.marker) {
		before[pid] = true
	}
	id := uuid.New()
	c := dialTCP(t, addr)
	if err := WriteInit(c, Init{ID: id, Height: 24, Width: 80, Command: command}); err != nil {
		t.Fatal(err)
	}
	newTestClient(t, c).expect("ready")
	deadline := time.Now().Add(shortWait)
	for {
		for _, pid := range markedProcesses(ts.marker) {
			if !before[pid] {
				return id, pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the session's process is not to be found")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendHostile connects n clients to the session id, and has each send
// request and then sit idle.
func sendHostile(t *testing.T, addr string, id uuid.UUID, n int, request []byte) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	// The writes end at the latest when the test closes the connections.
	t.Cleanup(wg.Wait)
	for i := range conns {
		conns[i] = dialTCP(t, addr)
		if err := WriteInit(conns[i], Init{ID: id}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = conns[i].Write(request)
		}()
	}
	return conns
}

// TestHostileClientsLeaveNoHeapBehind pins that a connection's memory is
// bounded by the limits, not by what its client sends: 64 clients that
// each send one large request and then sit idle cost the server little,
// whether the program reads its input or not, and the heap comes back
// down once they leave.
func TestHostileClientsLeaveNoHeapBehind(t *testing.T) {
	// Room for the hostile clients and the session's creator.
	ts := newTestServer(t, BackendBuffered, Config{MaxConnectionsPerSession: 65})
	addr, stop := serveLoopback(t, ts.srv)
	defer stop()
	const clients = 64

	// A program that reads everything: the requests are consumed whole.
	request := hostileRequest(t, 1<<20)
	payload := int64(len(request) - len(`{"data":""}`))
	reader, readerPID := startHostileTarget(t, ts, addr, "stty raw -echo; echo ready; exec cat >/dev/null")
	base := heapInUse()
	conns := sendHostile(t, addr, reader, clients, request)
	deadline := time.Now().Add(longWait * 2)
	for readBytes(readerPID) < clients*payload {
		if time.Now().After(deadline) {
			t.Fatalf("the program read %d bytes of the %d sent", readBytes(readerPID), clients*payload)
		}
		time.Sleep(20 * time.Millisecond)
	}
	idle := heapInUse()
	for _, c := range conns {
		_ = c.Close()
	}
	waitConnCount(t, ts.srv, 1)
	after := heapInUse()
	t.Logf("heap in use: %.1f MiB before, %.1f MiB with %d idle clients that sent %.1f MiB each, %.1f MiB after they left",
		mib(base), mib(idle), clients, mib(uint64(len(request))), mib(after))
	if grown := int64(idle) - int64(base); grown > 8<<20 {
		t.Errorf("%d idle clients hold %.1f MiB of heap", clients, float64(grown)/(1<<20))
	}
	if grown := int64(after) - int64(base); grown > 4<<20 {
		t.Errorf("%.1f MiB of heap stayed after the clients left", float64(grown)/(1<<20))
	}

	// A program that reads nothing: each connection waits with one chunk
	// of its request, the rest stays with the client.
	big := hostileRequest(t, 4<<20)
	sleeper, _ := startHostileTarget(t, ts, addr, "echo ready; exec sleep 1000")
	base = heapInUse()
	stalled := sendHostile(t, addr, sleeper, clients, big)
	// Give the server time to read what it will.
	time.Sleep(time.Second)
	held := heapInUse()
	t.Logf("heap in use: %.1f MiB before, %.1f MiB with %d clients whose %.1f MiB requests the program does not read",
		mib(base), mib(held), clients, mib(uint64(len(big))))
	// Alone this grows by about 5.6 MiB (about 90 KiB a client); in the
	// full package run it has measured up to 11.4 MiB, since the heap is
	// the whole process's. Holding each 4 MiB request would be 256 MiB.
	if grown := int64(held) - int64(base); grown > 16<<20 {
		t.Errorf("%d stalled clients hold %.1f MiB of heap", clients, float64(grown)/(1<<20))
	}
	for _, c := range stalled {
		_ = c.Close()
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
