// Command tailnet serves the reconnecting PTY on a tailnet, the way an
// agent embeds the library on its own tailnet listener (Coder's agent
// serves it on port 2 of its tailnet address), and forwards a local port
// to such an agent so that the CLI can attach through the tailnet.
//
// Usage:
//
//	tailnet serve   [--hostname agent] [--state DIR] [--control-url URL]
//	tailnet forward --agent HOST [--listen 127.0.0.1:7681] [--hostname user] [--state DIR] [--control-url URL]
//	rpty --addr 127.0.0.1:7681   # the CLI, through the forward
//
// Each is a tsnet node of its own: the first run logs a login URL, or set
// TS_AUTHKEY. --control-url names a control server other than
// Tailscale's (Headscale, or a test's). The example is a module of its own
// so that tsnet never reaches the library's importers.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"cdr.dev/slog/v3"
	"cdr.dev/slog/v3/sloggers/sloghuman"
	"golang.org/x/xerrors"
	"tailscale.com/tsnet"

	"github.com/reconnectingpty/reconnectingpty"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tailnet:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "serve" && args[0] != "forward") {
		return xerrors.New("usage: tailnet serve|forward [flags] (tailnet serve --help)")
	}
	mode := args[0]
	fs := flag.NewFlagSet("tailnet "+mode, flag.ContinueOnError)
	hostname := fs.String("hostname", map[string]string{"serve": "rpty-agent", "forward": "rpty-user"}[mode], "this node's name on the tailnet")
	state := fs.String("state", "", "directory for this node's tailnet state (default: tsnet's, under the user's config directory)")
	controlURL := fs.String("control-url", "", "control server URL (default: Tailscale's)")
	agent := fs.String("agent", "", "forward: the agent's tailnet name or address")
	listen := fs.String("listen", "127.0.0.1:7681", "forward: the local address the CLI connects to")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	logger := slog.Make(sloghuman.Sink(os.Stderr))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	node := &tsnet.Server{Hostname: *hostname, Dir: *state, ControlURL: *controlURL,
		UserLogf: func(format string, args ...any) { logger.Info(ctx, fmt.Sprintf(format, args...)) }}
	defer node.Close()
	if _, err := node.Up(ctx); err != nil {
		return xerrors.Errorf("join the tailnet: %w", err)
	}

	switch mode {
	case "serve":
		return serve(ctx, logger, node)
	default:
		if *agent == "" {
			return xerrors.New("forward needs --agent")
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return xerrors.Errorf("listen for the CLI: %w", err)
		}
		logger.Info(ctx, "forwarding to the agent", slog.F("listen", ln.Addr().String()), slog.F("agent", agentAddr(*agent)))
		return forward(ctx, logger, ln, func(ctx context.Context) (net.Conn, error) {
			return node.Dial(ctx, "tcp", agentAddr(*agent))
		})
	}
}

// serve runs the agent's side until ctx ends.
func serve(ctx context.Context, logger slog.Logger, node *tsnet.Server) error {
	lc, err := node.LocalClient()
	if err != nil {
		return xerrors.Errorf("get the tailnet's local client: %w", err)
	}
	srv, err := newAgent(logger, lc, reconnectingpty.Config{})
	if err != nil {
		return err
	}
	ln, err := node.Listen("tcp", fmt.Sprintf(":%d", AgentPort))
	if err != nil {
		return xerrors.Errorf("listen on the tailnet: %w", err)
	}
	logger.Info(ctx, "serving the reconnecting PTY on the tailnet", slog.F("port", AgentPort))
	// An interrupt closes the sessions and cuts connections at once.
	return srv.Serve(ctx, ctx, ln)
}
