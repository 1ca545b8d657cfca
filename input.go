package reconnectingpty

import (
	"context"
	"io"
	"os"
	"syscall"
	"time"

	"cdr.dev/slog/v3"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty/internal/link"
)

// relayInput decodes requests from c and applies them until the stream
// ends. A request's data reaches the terminal in chunks as it is decoded.
// A read-only connection's requests are decoded (its stream must still be
// well formed, and its close noticed) but go no further.
func (s *Server) relayInput(ctx context.Context, c *conn, att attachment, readOnly bool, lk *linkInput, logger slog.Logger) disconnect {
	rr := newRequestReader(c, s.cfg.MaxRequestSize)
	var acked uint64 // what the last frame said; the first went before the output
	if lk != nil {
		acked = lk.taken()
	}
	logged := false
	ignored := func(kind string) {
		s.metrics.readOnlyIgnored.WithLabelValues(kind).Inc()
		if !logged {
			logged = true
			logger.Info(ctx, "input from a read-only connection ignored")
		}
	}
	for {
		if lk != nil {
			c.keepReading(time.Now().Add(s.cfg.HeartbeatTimeout))
		}
		inputSeen := false
		height, width, err := rr.next(func(p []byte) error {
			if readOnly {
				if !inputSeen {
					inputSeen = true
					ignored("input")
				}
				return nil
			}
			var err error
			if lk != nil {
				err = lk.write(p, att.write)
			} else {
				_, err = att.write(p)
			}
			if err != nil {
				s.metrics.errors.WithLabelValues(errorTypeInput).Inc()
				if d, ok := c.reason(); ok {
					return &endedError{d: d}
				}
				s.logger.Warn(ctx, "write to reconnecting pty", slog.Error(err))
			}
			return nil
		})
		if err != nil {
			var ended *endedError
			if xerrors.As(err, &ended) {
				return ended.d
			}
			if xerrors.Is(err, io.EOF) {
				// A reset is reported once, to whichever of reader and
				// writer asks first; the other then sees a plain EOF. So
				// an EOF after a write failed with ECONNRESET is that
				// reset. (A reset after the client's FIN, when it hung up
				// cleanly and we wrote on, fails the write with EPIPE.)
				c.mu.Lock()
				werr := c.writeErr
				c.mu.Unlock()
				if xerrors.Is(werr, syscall.ECONNRESET) {
					s.metrics.errors.WithLabelValues(errorTypeNetwork).Inc()
					return disconnect{reason: DisconnectNetworkError, detail: "write output: " + werr.Error()}
				}
			}
			if lk != nil && xerrors.Is(err, os.ErrDeadlineExceeded) && !c.interruptedOrFailed() {
				s.metrics.errors.WithLabelValues(errorTypeNetwork).Inc()
				return disconnect{reason: DisconnectNetworkError, detail: "heartbeat timeout: nothing from the client for " + s.cfg.HeartbeatTimeout.String()}
			}
			return s.requestDisconnect(err)
		}
		if lk != nil {
			// Acknowledge input the program took, and answer a heartbeat.
			f := link.Frame{In: lk.taken(), Pong: rr.ping, HasPong: rr.hasPing}
			if f.In != acked || f.HasPong {
				acked = f.In
				att.control(link.AppendFrame(nil, lk.id, f))
			}
		}
		if height != 0 && width != 0 && readOnly {
			ignored("resize")
			continue
		}
		if height != 0 && width != 0 {
			if err := att.resize(height, width); err != nil {
				s.logger.Debug(ctx, "resize reconnecting pty", slog.Error(err))
			}
		}
	}
}

// endedError carries the reason a connection was ended while its input
// was being written.
type endedError struct{ d disconnect }

func (e *endedError) Error() string { return "connection ended: " + string(e.d.reason) }

func (s *Server) requestDisconnect(err error) disconnect {
	var syntaxErr *requestSyntaxError
	switch {
	case xerrors.Is(err, io.EOF):
		return disconnect{reason: DisconnectGraceful}
	case xerrors.Is(err, errRequestTooLarge):
		s.metrics.errors.WithLabelValues(errorTypeRequest).Inc()
		s.metrics.limitHit(limitRequestSize)
		return disconnect{reason: DisconnectProtocolError, detail: "decode request: " + err.Error()}
	case xerrors.As(err, &syntaxErr):
		s.metrics.errors.WithLabelValues(errorTypeRequest).Inc()
		return disconnect{reason: DisconnectProtocolError, detail: err.Error()}
	case xerrors.Is(err, syscall.ETIMEDOUT):
		// The kernel gave up on the peer: keepalive probes or output
		// unacknowledged past TCP_USER_TIMEOUT (tuneTCP).
		s.metrics.errors.WithLabelValues(errorTypeNetwork).Inc()
		return disconnect{reason: DisconnectNetworkError, detail: "keepalive timeout: read request: " + err.Error()}
	case xerrors.Is(err, io.ErrUnexpectedEOF):
		s.metrics.errors.WithLabelValues(errorTypeRequest).Inc()
		return disconnect{reason: DisconnectProtocolError, detail: "connection closed inside a request"}
	}
	s.metrics.errors.WithLabelValues(errorTypeNetwork).Inc()
	return disconnect{reason: DisconnectNetworkError, detail: "read request: " + err.Error()}
}
