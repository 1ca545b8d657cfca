package reconnectingpty

import (
	"context"
	"net"
)

// ConnOptions are what the embedding application decides for one
// connection, from its own authorisation: never from the client, which can
// neither ask for them nor lift them.
type ConnOptions struct {
	// ReadOnly serves the connection as a viewer: it gets all of the
	// session's output, but its input and resizes are ignored (counted in
	// <ns>_read_only_ignored_total, logged once, never written to the
	// terminal) and its size never counts for the SizePolicy. A read-only
	// connection never creates a session: when none has its ID, it is
	// ended as DisconnectStartFailed, with EOF, as if that session had
	// ended.
	ReadOnly bool
}

// merge combines options from two sources: the more restrictive wins.
func (o ConnOptions) merge(p ConnOptions) ConnOptions {
	return ConnOptions{ReadOnly: o.ReadOnly || p.ReadOnly}
}

// ServeConnWith serves one already-accepted connection like ServeConn,
// with options the caller decided for it (say, a WebSocket bridge serving
// a user who may only watch). When Config.ConnOptions is set as well, the
// options are combined and the more restrictive wins: the connection is
// read-only if either says so.
func (s *Server) ServeConnWith(ctx context.Context, nc net.Conn, opts ConnOptions) error {
	c, refused := s.track(nc)
	if refused != nil {
		s.refuse(ctx, nc, *refused)
		if refused.reason == DisconnectServerShutdown {
			return ErrServerClosed
		}
		return nil
	}
	c.opts = opts
	s.handle(ctx, c)
	return nil
}

// ignoreReadOnly counts what a read-only connection asked for and reports
// whether it asked for anything.
func (s *Server) ignoreReadOnly(req Request) bool {
	if req.Data != "" {
		s.metrics.readOnlyIgnored.WithLabelValues("input").Inc()
	}
	if req.Height != 0 && req.Width != 0 {
		s.metrics.readOnlyIgnored.WithLabelValues("resize").Inc()
	}
	return req.Data != "" || (req.Height != 0 && req.Width != 0)
}
