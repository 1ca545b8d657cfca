// Package netnstest gives a test a network namespace of its own, with
// loopback up and an nftables table in it, so that it can make a
// connection's packets vanish (a silent outage, as a closed laptop lid or
// a NAT that forgot the flow) with real kernel networking, and nothing
// outside the namespace is touched. It needs root, ip (iproute2) and nft
// (nftables).
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// NS is a network namespace created by the test.
type NS struct {
	name string
	fd   int
}

// Available says why a namespace cannot be made here, or "" when it can.
func Available() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, nftables)"
	}
	for _, p := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(p); err != nil {
			return "needs " + p
		}
	}
	return ""
}

// New creates a namespace with loopback up and an empty nftables chain on
// input, removed when the test ends.
func New(t testing.TB) *NS {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := &NS{name: "rpty-test-" + hex.EncodeToString(b)}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if ns.fd > 0 {
			_ = unix.Close(ns.fd)
		}
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del: %v: %s", err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+ns.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace: %v", err)
	}
	ns.fd = fd
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"nft", "add", "table", "inet", "rptytest"},
		{"nft", "add", "chain", "inet", "rptytest", "in", "{ type filter hook input priority 0; policy accept; }"},
	} {
		if err := ns.run(args...); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func (ns *NS) run(args ...string) error {
	full := append([]string{"netns", "exec", ns.name}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		return xerrors.Errorf("%v in namespace: %w: %s", args, err, out)
	}
	return nil
}

// Block drops every packet to or from port on arrival, in both
// directions: neither end gets an error, a reset or an ICMP message.
func (ns *NS) Block(port int) error {
	p := strconv.Itoa(port)
	if err := ns.run("nft", "add", "rule", "inet", "rptytest", "in", "tcp", "dport", p, "drop"); err != nil {
		return err
	}
	return ns.run("nft", "add", "rule", "inet", "rptytest", "in", "tcp", "sport", p, "drop")
}

// Unblock lets every packet through again.
func (ns *NS) Unblock() error {
	return ns.run("nft", "flush", "chain", "inet", "rptytest", "in")
}

// do runs f on an OS thread that has joined the namespace; sockets f
// creates belong to it for their whole life, whichever thread uses them
// later. The thread is discarded afterwards (its goroutine exits locked).
func (ns *NS) do(f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			errc <- xerrors.Errorf("setns: %w", err)
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}

// Listen listens on TCP addr inside the namespace.
func (ns *NS) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	var err error
	if nerr := ns.do(func() { ln, err = net.Listen("tcp", addr) }); nerr != nil {
		return nil, nerr
	}
	return ln, err
}

// Dial connects to TCP addr from inside the namespace.
func (ns *NS) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	if nerr := ns.do(func() {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
	}); nerr != nil {
		return nil, nerr
	}
	return c, err
}

// Run runs a command (ip, nft...) inside the namespace.
func (ns *NS) Run(args ...string) error { return ns.run(args...) }

// Do runs f on a thread inside the namespace: sockets it opens (a
// listener, a dial, an rtnetlink subscription) belong to the namespace.
func (ns *NS) Do(f func()) error { return ns.do(f) }

// Name is the namespace's name, for ip netns exec.
func (ns *NS) Name() string { return ns.name }
