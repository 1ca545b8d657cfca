package reconnectingpty

import (
	"net"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// Config configures a Server. The zero value is usable: every field has a
// default, applied by NewServer.
type Config struct {
	// Logger receives the server's logs, including one
	// "reconnecting pty closed" line per connection. Default: discard.
	Logger slog.Logger
	// Commander creates the process of a new session.
	// Default: LocalCommander{}.
	Commander Commander
	// ReportConnection, if set, is called when a connection with a valid
	// init attaches; the function it returns is called once when that
	// connection closes, with the same code and reason that are logged.
	ReportConnection func(id uuid.UUID, remoteAddr string) (disconnected func(code int, reason string))
	// Metrics receives the server's metrics. Default: unregistered
	// collectors (see NewMetrics).
	Metrics *Metrics
	// Timeout is how long a session lives after its last connection
	// detaches. A negative Timeout keeps sessions with no connection alive
	// until their process exits, CloseSession closes them or the server
	// shuts down: for embedders that manage a session's lifetime
	// themselves. Default: 5 minutes.
	Timeout time.Duration
	// SizePolicy decides the terminal size when several writable
	// connections of different sizes share a session (buffered backend;
	// screen gives each connection its own display). Default: SizeLatest.
	SizePolicy SizePolicy
	// ConnOptions, if set, decides each connection's options (read-only)
	// once its init has been read, from the init and the connection as it
	// was handed to the server: its remote and local addresses, its TLS
	// state, a wrapper type of the caller's. It must not read from, write
	// to or close the connection. Its result is combined with the options
	// given to ServeConnWith: the more restrictive wins. It must be safe
	// for concurrent use.
	ConnOptions func(init Init, nc net.Conn) ConnOptions
	// BufferSize is how many bytes of recent output the buffered backend
	// replays on attach. Default: 64 KiB.
	BufferSize int
	// ResumeBufferSize is how many bytes of recent output a buffered
	// session keeps for clients that resume (docs/PROTOCOL.md): one that
	// reconnects having missed no more than this gets exactly the bytes
	// it missed, one further behind gets a reset and a redraw. One buffer
	// serves this and the replay, so a session keeps the larger of the
	// two; it grows with the output rather than being allocated at start.
	// Default: 1 MiB.
	ResumeBufferSize int
	// ScrollbackLines is how many lines above the screen a vt session
	// keeps and repaints on attach, so a reloaded page shows history, not
	// only the last screen. A negative value keeps none. Default: 1,000.
	ScrollbackLines int
	// Backend is used when the init asks for "auto" or nothing; auto here
	// means vt. Default: BackendAuto.
	Backend BackendType
	// ScreenPath is the GNU screen binary the screen backend runs.
	// Default: "screen", found on PATH.
	ScreenPath string
	// ConnQueueSize is how many bytes of output may wait for one slow
	// connection before it is cut off as a slow consumer, so that it never
	// holds up the session or the other connections. Default: 4 MiB or
	// twice BufferSize, whichever is larger.
	ConnQueueSize int
	// SlowConsumerTimeout is how long output may wait while every attached
	// connection is a quarter of ConnQueueSize behind; then they are cut
	// off as slow consumers and the output flows again. Meanwhile the
	// process's writes block, as on a slow terminal. Default: 10 seconds.
	SlowConsumerTimeout time.Duration
	// InitTimeout bounds how long a new connection may take to send its
	// init frame; a connection that takes longer is closed as a
	// protocol_error. Default: 10 seconds (a client sends its init in its
	// first write; the time only has to cover a slow network).
	InitTimeout time.Duration
	// MaxRequestSize bounds one JSON request of the input stream, counted
	// from its first byte to its last; one byte more is a protocol_error.
	// The server never holds a request whole (its data reaches the
	// terminal in 32 KiB pieces), so this bounds time, not memory.
	// Default: 4 MiB.
	MaxRequestSize int
	// MaxSessions bounds the live sessions; a connection that would create
	// one more is refused (limit_exceeded). Each session holds a PTY and a
	// process (4, with screen). Default: 1024, a quarter of Linux's
	// default PTY limit. -1: no limit.
	MaxSessions int
	// MaxConnections bounds the connections served at once, attached or
	// not; the excess is refused at once (limit_exceeded). Default: 4096.
	// -1: no limit.
	MaxConnections int
	// MaxConnectionsPerSession bounds the connections attached to one
	// session; the excess is refused (limit_exceeded). Default: 64. -1: no
	// limit.
	MaxConnectionsPerSession int
	// MaxStartups bounds the connections that have not sent their init
	// yet, like sshd's MaxStartups; the excess is refused at once
	// (limit_exceeded), so that idle connections cannot hold every file
	// descriptor until InitTimeout. Default: 64. -1: no limit.
	MaxStartups int
	// LogShortSessionID logs the first 8 hex digits of a session ID rather
	// than all of it. The ID is a capability (whoever knows it can use the
	// session), so logs that more people read than may use the sessions
	// should not carry it whole. Default: false.
	LogShortSessionID bool
	// HeartbeatTimeout is how long a connection that asked for the link
	// extension (docs/PROTOCOL.md) may send nothing before it is closed as
	// a dead link (network_error, "heartbeat timeout"). Such a client
	// sends a heartbeat at least every 5 seconds. Default: 10 seconds.
	HeartbeatTimeout time.Duration
	// DisableLink makes the server ignore the link extension's init keys,
	// as a server without the extension does. Default: false.
	DisableLink bool
	// TCPUserTimeout bounds, on a TCP connection, how long output may stay
	// unacknowledged and how long an idle peer may stay silent to the
	// kernel's keepalive probes before the kernel ends the connection
	// (TCP_USER_TIMEOUT and keepalive; see docs/network.md): what notices
	// a dead client without the link extension. Default: 14 seconds; -1
	// leaves the socket as it was accepted.
	TCPUserTimeout time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Commander == nil {
		c.Commander = LocalCommander{}
	}
	if c.Metrics == nil {
		m, err := NewMetrics(nil, "")
		if err != nil {
			return c, err
		}
		c.Metrics = m
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.BufferSize == 0 {
		c.BufferSize = 64 << 10
	}
	if c.ScrollbackLines == 0 {
		c.ScrollbackLines = 1000
	}
	if c.ResumeBufferSize == 0 {
		c.ResumeBufferSize = 1 << 20
	}
	if c.SizePolicy == "" {
		c.SizePolicy = SizeLatest
	}
	if c.Backend == "" {
		c.Backend = BackendAuto
	}
	if c.ScreenPath == "" {
		c.ScreenPath = "screen"
	}
	if c.ConnQueueSize == 0 {
		c.ConnQueueSize = max(4<<20, 2*c.BufferSize)
	}
	if c.SlowConsumerTimeout == 0 {
		c.SlowConsumerTimeout = 10 * time.Second
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.MaxRequestSize == 0 {
		c.MaxRequestSize = 4 << 20
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 10 * time.Second
	}
	if c.TCPUserTimeout == 0 {
		c.TCPUserTimeout = 14 * time.Second
	}
	for _, l := range []struct {
		v   *int
		def int
	}{
		{&c.MaxSessions, 1024},
		{&c.MaxConnections, 4096},
		{&c.MaxConnectionsPerSession, 64},
		{&c.MaxStartups, 64},
	} {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	switch {
	case c.BufferSize < 0:
		return c, xerrors.Errorf("buffer size %d is negative", c.BufferSize)
	case c.ResumeBufferSize < 0:
		return c, xerrors.Errorf("resume buffer size %d is negative", c.ResumeBufferSize)
	case c.ConnQueueSize < 0:
		return c, xerrors.Errorf("connection queue size %d is negative", c.ConnQueueSize)
	case c.ConnQueueSize < c.BufferSize:
		return c, xerrors.Errorf("connection queue size %d is smaller than the buffer size %d it must hold", c.ConnQueueSize, c.BufferSize)
	case c.SlowConsumerTimeout < 0:
		return c, xerrors.Errorf("slow consumer timeout %s is negative", c.SlowConsumerTimeout)
	case c.InitTimeout < 0:
		return c, xerrors.Errorf("init timeout %s is negative", c.InitTimeout)
	case c.HeartbeatTimeout < 0:
		return c, xerrors.Errorf("heartbeat timeout %s is negative", c.HeartbeatTimeout)
	case c.TCPUserTimeout < 0 && c.TCPUserTimeout != -1:
		return c, xerrors.Errorf("TCP user timeout %s: want a positive duration, or -1 to leave sockets alone", c.TCPUserTimeout)
	case c.MaxRequestSize < 0:
		return c, xerrors.Errorf("max request size %d is negative", c.MaxRequestSize)
	case c.MaxSessions < -1:
		return c, xerrors.Errorf("max sessions %d: want a positive number, or -1 for no limit", c.MaxSessions)
	case c.MaxConnections < -1:
		return c, xerrors.Errorf("max connections %d: want a positive number, or -1 for no limit", c.MaxConnections)
	case c.MaxConnectionsPerSession < -1:
		return c, xerrors.Errorf("max connections per session %d: want a positive number, or -1 for no limit", c.MaxConnectionsPerSession)
	case c.MaxStartups < -1:
		return c, xerrors.Errorf("max startups %d: want a positive number, or -1 for no limit", c.MaxStartups)
	}
	if _, err := parseBackendType(string(c.Backend)); err != nil {
		return c, xerrors.Errorf("default backend: %w", err)
	}
	if err := parseSizePolicy(c.SizePolicy); err != nil {
		return c, err
	}
	return c, nil
}
