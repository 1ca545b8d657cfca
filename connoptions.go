package reconnectingpty

import (
	"context"
	"net"

	"golang.org/x/xerrors"
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
	// QueueSize, if not 0, lowers Config.ConnQueueSize for this connection
	// (buffered and vt): how much output may wait for it before it is cut
	// off, a quarter of which makes it count as behind for pacing. A
	// client that renders slowly, such as a browser tab, does better with
	// less: a program flooding it is paced sooner, and what its user types
	// is echoed behind less output. At least MinConnQueueSize and
	// Config.BufferSize; above Config.ConnQueueSize it changes nothing.
	QueueSize int
}

// MinConnQueueSize is the smallest ConnOptions.QueueSize: room for a
// couple of the largest chunks the PTY is read in.
const MinConnQueueSize = 2 * readSize

// merge combines options from two sources: the more restrictive wins.
func (o ConnOptions) merge(p ConnOptions) ConnOptions {
	q := o.QueueSize
	if q == 0 || (p.QueueSize != 0 && p.QueueSize < q) {
		q = p.QueueSize
	}
	return ConnOptions{ReadOnly: o.ReadOnly || p.ReadOnly, QueueSize: q}
}

func (o ConnOptions) validate(cfg *Config) error {
	switch {
	case o.QueueSize == 0:
	case o.QueueSize < MinConnQueueSize:
		return xerrors.Errorf("connection options: queue size %d is below the minimum %d", o.QueueSize, MinConnQueueSize)
	case o.QueueSize < cfg.BufferSize:
		return xerrors.Errorf("connection options: queue size %d is smaller than the buffer size %d it must hold", o.QueueSize, cfg.BufferSize)
	}
	return nil
}

// queueSize is the output queue bound of a connection served with o.
func (o ConnOptions) queueSize(cfg *Config) int {
	if o.QueueSize != 0 {
		return min(o.QueueSize, cfg.ConnQueueSize)
	}
	return cfg.ConnQueueSize
}

// ServeConnWith serves one already-accepted connection like ServeConn,
// with options the caller decided for it (say, a WebSocket bridge serving
// a user who may only watch). When Config.ConnOptions is set as well, the
// options are combined and the more restrictive wins: the connection is
// read-only if either says so, and the smaller queue size applies.
//
// Options that are not valid (see ConnOptions) are the caller's mistake:
// the connection is closed unserved and the error returned.
func (s *Server) ServeConnWith(ctx context.Context, nc net.Conn, opts ConnOptions) error {
	if err := opts.validate(&s.cfg); err != nil {
		_ = nc.Close()
		return err
	}
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
