package reconnectingpty

import (
	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// The limits themselves are Config fields (MaxSessions, MaxConnections,
// MaxConnectionsPerSession, MaxStartups, InitTimeout, MaxRequestSize);
// this file has what enforcing them shares. Every refusal is a close with
// DisconnectLimitExceeded (or DisconnectProtocolError for the client's own
// init timeout and request size) and a count in <ns>_limit_hits_total.

// over reports whether n things already reach limit (-1: none does).
func over(n, limit int) bool { return limit >= 0 && n >= limit }

// initDone counts a connection out of the startups once its init is read
// or it failed to send one.
func (s *Server) initDone(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.initDone {
		c.initDone = true
		s.startups--
	}
}

// logID is how a session ID appears in logs; see Config.LogShortSessionID.
func (s *Server) logID(id uuid.UUID) string {
	if s.cfg.LogShortSessionID {
		return id.String()[:8]
	}
	return id.String()
}

// errLimit is a connection refused by a configured limit.
var errLimit = xerrors.New("limit reached")

// sessionGone counts a session out of MaxSessions.
func (s *Server) sessionGone() {
	s.mu.Lock()
	s.live--
	s.mu.Unlock()
}
