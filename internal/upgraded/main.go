// Command upgraded is the daemon the upgrade tests and benchmark run: a
// reconnecting PTY server that upgrades itself on request.
//
// It logs JSON to stderr, and plain lines the tests wait for:
//
//	MARKER <marker> PID <pid>      at start; the marker is set at build time
//	READY rpty=<addr> ctl=<addr>   once it serves
//	INHERIT_ERROR <error>          when it refused a handed-over state
//
// Its control port takes one command per connection:
//
//	upgrade PATH [NAME=VALUE ...]  upgrade to PATH, with those variables
//	                               added; replies "ERR <error>" if that
//	                               failed, and closes at the exec otherwise
//	sessions                       replies Server.Sessions as JSON
//	fds                            replies the descriptors it has open
//
// UPGRADED_CORRUPT=checksum or =version makes it damage the handed-over
// state before reading it, as a broken upgrade would.
// UPGRADED_CPUPROFILE=FILE writes a CPU profile of its first 3 seconds to
// FILE (for BenchmarkUpgrade).
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"cdr.dev/slog/v3/sloggers/slogjson"

	"github.com/reconnectingpty/reconnectingpty"
)

// marker tells one build from another: go build -ldflags "-X main.marker=...".
var marker = "unset"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "upgraded:", err)
		os.Exit(1)
	}
}

func run() error {
	fmt.Fprintf(os.Stderr, "MARKER %s PID %d\n", marker, os.Getpid())
	if how := os.Getenv("UPGRADED_CORRUPT"); how != "" {
		_ = os.Unsetenv("UPGRADED_CORRUPT")
		if err := corrupt(how); err != nil {
			return err
		}
	}
	if p := os.Getenv("UPGRADED_CPUPROFILE"); p != "" {
		_ = os.Unsetenv("UPGRADED_CPUPROFILE")
		stopProfile, err := profileFor(p, 3*time.Second)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	h, err := reconnectingpty.Inherited()
	if err != nil {
		fmt.Fprintf(os.Stderr, "INHERIT_ERROR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	logger := slog.Make(slogjson.Sink(os.Stderr))
	srv, err := reconnectingpty.NewServer(reconnectingpty.Config{Logger: logger, Timeout: -1, MaxSessions: 2000})
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := srv.Restore(ctx, h); err != nil {
		return err
	}
	listen := func(name string) (net.Listener, error) {
		if h != nil {
			if l, ok := h.Listener(name); ok {
				return l, nil
			}
		}
		return net.Listen("tcp", "127.0.0.1:0")
	}
	ln, err := listen("rpty")
	if err != nil {
		return err
	}
	ctl, err := listen("ctl")
	if err != nil {
		return err
	}
	if h != nil {
		_ = h.Close()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sigs
		stop()
		_ = ctl.Close()
	}()
	go serveControl(ctx, srv, ctl, ln)
	fmt.Fprintf(os.Stderr, "READY rpty=%s ctl=%s\n", ln.Addr(), ctl.Addr())
	hard, hardStop := context.WithTimeout(context.Background(), time.Hour)
	defer hardStop()
	go func() {
		<-ctx.Done()
		time.Sleep(time.Second)
		hardStop()
	}()
	return srv.Serve(ctx, hard, ln)
}

func serveControl(ctx context.Context, srv *reconnectingpty.Server, ctl, ln net.Listener) {
	for {
		c, err := ctl.Accept()
		if err != nil {
			return
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "upgrade":
			err := srv.Upgrade(ctx, reconnectingpty.UpgradeOptions{
				Path:      f[1],
				Args:      []string{f[1]},
				Env:       append(os.Environ(), f[2:]...),
				Listeners: map[string]net.Listener{"rpty": ln, "ctl": ctl},
			})
			fmt.Fprintf(c, "ERR %s\n", err)
		case len(f) == 1 && f[0] == "sessions":
			_ = json.NewEncoder(c).Encode(srv.Sessions())
		case len(f) == 1 && f[0] == "fds":
			entries, _ := os.ReadDir("/proc/self/fd")
			var out []string
			for _, e := range entries {
				target, _ := os.Readlink("/proc/self/fd/" + e.Name())
				out = append(out, e.Name()+" "+target)
			}
			_ = json.NewEncoder(c).Encode(out)
		default:
			fmt.Fprintf(c, "ERR unknown command %q\n", line)
		}
		_ = c.Close()
	}
}

// profileFor writes a CPU profile to path until d has passed or the
// returned function is called, whichever comes first.
func profileFor(path string, d time.Duration) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		})
	}
	time.AfterFunc(d, stop)
	return stop, nil
}

// corrupt damages the handed-over state in place: a flipped payload byte
// (checksum) or a format from the future (version).
func corrupt(how string) error {
	v := os.Getenv(reconnectingpty.HandoverEnv)
	var fd int
	for _, f := range strings.Fields(v) {
		if n, ok := strings.CutPrefix(f, "state="); ok {
			fd, _ = strconv.Atoi(n)
		}
	}
	if fd == 0 {
		return fmt.Errorf("corrupt: no state in %q", v)
	}
	// Not an os.File: its finalizer would close the descriptor under
	// Inherited.
	switch how {
	case "checksum":
		b := make([]byte, 1)
		if _, err := syscall.Pread(fd, b, 40); err != nil {
			return err
		}
		b[0] ^= 0xff
		_, err := syscall.Pwrite(fd, b, 40)
		return err
	case "version":
		_, err := syscall.Pwrite(fd, binary.BigEndian.AppendUint32(nil, 99), 8)
		return err
	}
	return fmt.Errorf("corrupt: %q: want checksum or version", how)
}
