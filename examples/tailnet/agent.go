package main

import (
	"context"
	"net"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/xerrors"
	"tailscale.com/client/tailscale/apitype"

	"github.com/reconnectingpty/reconnectingpty"
)

// AgentPort is the tailnet port the agent serves the reconnecting PTY on,
// as Coder's agent does.
const AgentPort = 2

// whoIser is what the agent asks for a connection's tailnet identity:
// tsnet's LocalClient.
type whoIser interface {
	WhoIs(ctx context.Context, remoteAddr string) (*apitype.WhoIsResponse, error)
}

// newAgent builds the library's server for a tailnet listener. Every
// connection's tailnet identity (the user's login and the node it came
// from) is logged when it attaches and again beside the library's
// disconnect attribution when it closes, so an operator reads who was
// disconnected and why in one line.
func newAgent(logger slog.Logger, who whoIser, cfg reconnectingpty.Config) (*reconnectingpty.Server, error) {
	cfg.Logger = logger
	cfg.ReportConnection = func(id uuid.UUID, remote string) func(code int, reason string) {
		ident := identify(who, remote)
		fields := append([]slog.Field{slog.F("session_id", id.String()), slog.F("remote", remote)}, ident...)
		logger.Info(context.Background(), "tailnet connection attached", fields...)
		return func(code int, reason string) {
			logger.Info(context.Background(), "tailnet connection closed",
				append(fields, slog.F("disconnect_reason", reason), slog.F("exit_code", code))...)
		}
	}
	srv, err := reconnectingpty.NewServer(cfg)
	if err != nil {
		return nil, xerrors.Errorf("create the reconnecting PTY server: %w", err)
	}
	return srv, nil
}

// identify asks the tailnet who is at remote. A failed lookup is logged
// as such: the connection is still served, since the tailnet itself
// admitted it.
func identify(who whoIser, remote string) []slog.Field {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := who.WhoIs(ctx, remote)
	if err != nil {
		return []slog.Field{slog.F("tailnet_whois_error", err.Error())}
	}
	var fields []slog.Field
	if res.UserProfile != nil {
		fields = append(fields, slog.F("tailnet_user", res.UserProfile.LoginName))
	}
	if res.Node != nil {
		fields = append(fields, slog.F("tailnet_node", res.Node.ComputedName), slog.F("tailnet_node_id", string(res.Node.StableID)))
	}
	return fields
}

// agentAddr is the address a user's node dials to reach an agent.
func agentAddr(host string) string {
	return net.JoinHostPort(host, "2")
}
