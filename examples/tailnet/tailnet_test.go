package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"tailscale.com/derp/derpserver"
	"tailscale.com/envknob"
	"tailscale.com/ipn/store/mem"
	"tailscale.com/net/netns"
	"tailscale.com/net/stun/stuntest"
	"tailscale.com/tailcfg"
	"tailscale.com/tsnet"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
	"tailscale.com/types/nettype"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/client"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// inNetns marks the test binary re-run inside a network namespace of its
// own, where loopback is the only interface.
const inNetns = "RPTY_TAILNET_IN_NETNS"

// TestTailnetSessionResumesAcrossARelayOutage runs a whole tailnet on this
// machine, offline: a control server (tailscale's testcontrol), a DERP
// relay and a STUN server on 127.0.0.1, and two tsnet nodes, the agent
// serving the library on its tailnet port 2 and a user's node dialling it
// with the Go client. Direct UDP is disabled, so every packet goes through
// the local DERP. The user types a command that prints numbered lines; the
// DERP relay is stopped for a while and started again; the stream must
// carry every line once, in order, and the agent must have logged the
// user's tailnet identity beside the disconnect attribution.
//
// It runs inside a network namespace that has only loopback (unshare -n,
// as root), so that no node can find, let alone reach, any other address.
func TestTailnetSessionResumesAcrossARelayOutage(t *testing.T) {
	if os.Getenv(inNetns) == "" {
		reRunInOwnNetns(t)
		return
	}
	outage := 5 * time.Second
	if s := os.Getenv("RPTY_TAILNET_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("RPTY_TAILNET_OUTAGE: %v", err)
		}
		outage = d
	}
	requireOnlyLoopback(t)
	offlineKnobs(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	derp := startDERP(t)
	controlURL := startControl(t, derp.derpMap)
	agentNode := startNode(ctx, t, controlURL, "agent")
	userNode := startNode(ctx, t, controlURL, "user")
	agentIP, _ := agentNode.TailscaleIPs()

	logs := &logSink{}
	lc, err := agentNode.LocalClient()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newAgent(slog.Make(logs), lc, reconnectingpty.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := agentNode.Listen("tcp", fmt.Sprintf(":%d", AgentPort))
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx, serveCtx, ln) }()
	defer func() {
		stopServe()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	var states stateLog
	id := uuid.New()
	c, err := client.Dial(ctx, func(ctx context.Context) (net.Conn, error) {
		return userNode.Dial(ctx, "tcp", agentAddr(agentIP.String()))
	}, reconnectingpty.Init{ID: id, Height: 24, Width: 120, Command: "bash --norc --noprofile"},
		client.Options{OnState: states.add, OnReset: func() { t.Error("the session was reset, not resumed") },
			DialTimeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("attach through the tailnet: %v", err)
	}
	defer c.Close()
	lines := readTicks(c)

	if _, err := c.Write([]byte("stty -echo; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.05; done\r")); err != nil {
		t.Fatal(err)
	}
	before := lines.waitFor(t, 20, 30*time.Second)
	t.Logf("through DERP: %d ticks before the outage", before)

	derp.stop(t)
	stopped := time.Now()
	time.Sleep(outage)
	atRestore := lines.count()
	derp.start(t)
	restored := time.Now()
	after := lines.waitFor(t, atRestore+20, 2*time.Minute)
	t.Logf("relay down %v; %d ticks arrived during the outage (in flight before it); output flowing again %v after the relay returned; %d ticks in all",
		restored.Sub(stopped).Round(time.Millisecond), atRestore-before, lines.firstAfter(atRestore).Sub(restored).Round(time.Millisecond), after)
	t.Logf("client states: %s", states.String())

	// The CLI's path: a local port forwarded through the user's node
	// (tailnet forward), attaching to the same session.
	fwdLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fwdCtx, stopFwd := context.WithCancel(ctx)
	fwdDone := make(chan error, 1)
	go func() {
		fwdDone <- forward(fwdCtx, slog.Make(logs), fwdLn, func(ctx context.Context) (net.Conn, error) {
			return userNode.Dial(ctx, "tcp", agentAddr(agentIP.String()))
		})
	}()
	viaForward, err := client.Dial(ctx, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", fwdLn.Addr().String())
	}, reconnectingpty.Init{ID: id, Height: 24, Width: 120}, client.Options{})
	if err != nil {
		t.Fatalf("attach through the forward: %v", err)
	}
	fwdTicks := readTicks(viaForward)
	fwdTicks.waitFor(t, 5, 30*time.Second)
	_ = viaForward.Close()
	fwdTicks.wait()
	stopFwd()
	if err := <-fwdDone; err != nil {
		t.Errorf("forward: %v", err)
	}

	if _, err := c.Write([]byte{3}); err != nil { // Ctrl-C ends the loop
		t.Fatal(err)
	}
	_ = c.Close()
	lines.wait()
	if err := lines.check(); err != nil {
		t.Error(err)
	}
	stopServe()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	served <- nil // for the deferred wait

	userName := userNode.Hostname
	if !logs.has("tailnet connection attached", "tailnet_node", userName) {
		t.Errorf("the agent did not log the user's tailnet node %q on attach:\n%s", userName, logs.String())
	}
	if n := logs.count("tailnet connection attached", "tailnet_node", userName); n < 3 {
		t.Errorf("the agent logged %d attaches from %q, want at least 3 (first, after the outage, through the forward):\n%s", n, userName, logs.String())
	}
	if !logs.has("tailnet connection closed", "disconnect_reason", "") {
		t.Errorf("the agent did not log a close with its attribution:\n%s", logs.String())
	}
}

// reRunInOwnNetns runs this test again in a new network namespace holding
// only loopback, and fails with its output if it fails.
func reRunInOwnNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace with only loopback (unshare -n); CI runs as root")
	}
	for _, prog := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it): %v", prog, err)
		}
	}
	args := []string{"-test.run", "^" + t.Name() + "$", "-test.v", "-test.count", "1"}
	cmd := exec.Command("unshare", append([]string{"--net", "--", "sh", "-c", `ip link set lo up && exec "$@"`, "sh", os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), inNetns+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the test failed in its network namespace: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatal("the test did not pass in its network namespace")
	}
}

// requireOnlyLoopback fails unless loopback is the only interface here.
func requireOnlyLoopback(t *testing.T) {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			t.Fatalf("interface %s is not loopback: the tailnet test must run in a namespace with only loopback", i.Name)
		}
	}
}

// offlineKnobs keeps the nodes off the internet and off direct paths.
func offlineKnobs(t *testing.T) {
	t.Helper()
	netns.SetEnabled(false)
	for k, v := range map[string]string{
		"TS_NO_LOGS_NO_SUPPORT":         "true",
		"TS_ASSUME_NETWORK_UP_FOR_TEST": "1",
		"TS_DISABLE_PORTMAPPER":         "1",
		"TS_PANIC_IF_HIT_MAIN_CONTROL":  "1",
		"TS_DEBUG_NEVER_DIRECT_UDP":     "1", // every packet through the local DERP
	} {
		envknob.Setenv(k, v)
	}
}

// derpRelay is a DERP server on a fixed loopback port that can be stopped
// and started again on the same port.
type derpRelay struct {
	server  *derpserver.Server
	addr    string
	http    *httptest.Server
	ln      *rptytest.TrackingListener // DERP hijacks its connections: the HTTP server no longer closes them
	derpMap *tailcfg.DERPMap
}

func startDERP(t *testing.T) *derpRelay {
	t.Helper()
	d := &derpRelay{server: derpserver.New(key.NewNode(), logger.Discard)}
	t.Cleanup(func() { _ = d.server.Close() })
	d.start(t)
	stunAddr, stunStop := stuntest.ServeWithPacketListener(t, nettype.Std{})
	t.Cleanup(stunStop)
	port := d.http.Listener.Addr().(*net.TCPAddr).Port
	d.derpMap = &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{1: {
		RegionID: 1, RegionCode: "local",
		Nodes: []*tailcfg.DERPNode{{
			Name: "local", RegionID: 1, HostName: "127.0.0.1", IPv4: "127.0.0.1", IPv6: "none",
			STUNPort: stunAddr.Port, DERPPort: port, InsecureForTests: true, STUNTestIP: "127.0.0.1",
		}},
	}}}
	return d
}

func (d *derpRelay) start(t *testing.T) {
	t.Helper()
	addr := d.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen for DERP on %s: %v", addr, err)
	}
	d.addr = ln.Addr().String()
	d.ln = &rptytest.TrackingListener{Listener: ln}
	hs := httptest.NewUnstartedServer(derpserver.Handler(d.server))
	_ = hs.Listener.Close()
	hs.Listener = d.ln
	hs.Config.ErrorLog = logger.StdLogger(logger.Discard)
	hs.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	hs.StartTLS()
	d.http = hs
	t.Cleanup(hs.Close)
}

// stop closes the listener and every relayed connection: the nodes'
// packets go nowhere until start.
func (d *derpRelay) stop(t *testing.T) {
	t.Helper()
	d.http.Close()
	d.ln.Drop()
}

func startControl(t *testing.T, derpMap *tailcfg.DERPMap) string {
	t.Helper()
	control := &testcontrol.Server{DERPMap: derpMap, Logf: logger.Discard,
		DNSConfig: &tailcfg.DNSConfig{Proxied: true}, MagicDNSDomain: "tail.example"}
	control.HTTPTestServer = httptest.NewUnstartedServer(control)
	control.HTTPTestServer.Start()
	t.Cleanup(control.HTTPTestServer.Close)
	return control.HTTPTestServer.URL
}

func startNode(ctx context.Context, t *testing.T, controlURL, name string) *tsnet.Server {
	t.Helper()
	s := &tsnet.Server{
		Dir: filepath.Join(t.TempDir(), name), ControlURL: controlURL, Hostname: name,
		Store: new(mem.Store), Ephemeral: true,
		Logf: logger.Discard, UserLogf: logger.Discard,
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Up(ctx); err != nil {
		t.Fatalf("bring up tsnet node %s: %v", name, err)
	}
	return s
}

// ticks reads the session's output and records each "tick-N" line with
// when it arrived.
type ticks struct {
	mu   sync.Mutex
	seen []int
	at   []time.Time
	raw  bytes.Buffer
	done chan struct{}
}

func readTicks(r io.Reader) *ticks {
	tk := &ticks{done: make(chan struct{})}
	go func() {
		defer close(tk.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			// What follows a carriage return overwrites the line (bash
			// ends bracketed paste with "ESC [?2004l CR" before output).
			if i := strings.LastIndexByte(line, '\r'); i >= 0 {
				line = line[i+1:]
			}
			tk.mu.Lock()
			tk.raw.WriteString(line + "\n")
			if n, ok := strings.CutPrefix(line, "tick-"); ok {
				if v, err := strconv.Atoi(n); err == nil {
					tk.seen = append(tk.seen, v)
					tk.at = append(tk.at, time.Now())
				}
			}
			tk.mu.Unlock()
		}
	}()
	return tk
}

func (tk *ticks) count() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return len(tk.seen)
}

func (tk *ticks) firstAfter(i int) time.Time {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if i < len(tk.at) {
		return tk.at[i]
	}
	return time.Time{}
}

func (tk *ticks) waitFor(t *testing.T, n int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if c := tk.count(); c >= n {
			return c
		}
		if time.Now().After(deadline) {
			tk.mu.Lock()
			defer tk.mu.Unlock()
			t.Fatalf("%d ticks after %v, want %d; output so far:\n%s", len(tk.seen), within, n, tail(tk.raw.String(), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tk *ticks) wait() { <-tk.done }

// check requires every tick once, in order, from 1.
func (tk *ticks) check() error {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	for i, v := range tk.seen {
		if v != i+1 {
			return fmt.Errorf("tick %d arrived as the %d-th (lost or repeated output): ...%v", v, i+1, tk.seen[max(0, i-3):min(len(tk.seen), i+3)])
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type stateLog struct {
	mu     sync.Mutex
	events []string
	start  time.Time
}

func (s *stateLog) add(ev client.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.start.IsZero() {
		s.start = time.Now()
	}
	s.events = append(s.events, fmt.Sprintf("%s@%v", ev.State, time.Since(s.start).Round(10*time.Millisecond)))
}

func (s *stateLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.events, " ")
}

// logSink keeps the agent's log entries for the test to read.
type logSink struct {
	mu      sync.Mutex
	entries []slog.SinkEntry
}

func (l *logSink) LogEntry(_ context.Context, e slog.SinkEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
}

func (l *logSink) Sync() {}

// has reports whether an entry with message msg has field key, with the
// value want unless want is empty.
func (l *logSink) has(msg, key, want string) bool { return l.count(msg, key, want) > 0 }

// count is how many entries has would find.
func (l *logSink) count(msg, key, want string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if e.Message != msg {
			continue
		}
		for _, f := range e.Fields {
			if f.Name == key && (want == "" || fmt.Sprint(f.Value) == want) {
				n++
				break
			}
		}
	}
	return n
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.entries {
		fmt.Fprintf(&b, "%s %s", e.Level, e.Message)
		for _, f := range e.Fields {
			fmt.Fprintf(&b, " %s=%v", f.Name, f.Value)
		}
		b.WriteString("\n")
	}
	return b.String()
}
