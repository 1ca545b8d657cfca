package reconnectingpty

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/xerrors"
)

// Metrics are the server's Prometheus collectors. Create them with
// NewMetrics and pass them in Config.Metrics; one Metrics may be shared by
// several servers.
//
//	name                                  type       labels  meaning
//	<ns>_connections_total                counter            connections accepted
//	<ns>_connections_active               gauge              connections being served
//	<ns>_sessions_active                  gauge              live sessions
//	<ns>_sessions                         gauge      backend live sessions by backend (buffered, screen)
//	<ns>_errors_total                     counter    type    failures, by kind (see below)
//	<ns>_disconnects_total                counter    reason  connection closes, by DisconnectReason
//	<ns>_output_bytes_total               counter            bytes the sessions' processes wrote
//	<ns>_replay_bytes_total               counter            bytes of history replayed on attach
//	<ns>_session_duration_seconds         histogram          lifetime of ended sessions
//	<ns>_limit_hits_total                 counter    limit   connections refused or cut at a limit (see below)
//
// Limits: sessions (MaxSessions), connections (MaxConnections),
// session_connections (MaxConnectionsPerSession), startups (MaxStartups),
// init_timeout (InitTimeout), request_size (MaxRequestSize).
//
//	<ns>_read_only_ignored_total          counter    kind    requests of read-only connections ignored: input, resize
//
// Error types: init (no valid init frame), request (malformed request),
// start (command could not start), input (writing to the PTY failed),
// network (connection read or write failed), slow_consumer,
// screen_unavailable (screen asked for but not installed), screen.
type Metrics struct {
	connections       prometheus.Counter
	connectionsActive prometheus.Gauge
	sessionsActive    prometheus.Gauge
	sessions          *prometheus.GaugeVec
	errors            *prometheus.CounterVec
	disconnects       *prometheus.CounterVec
	outputBytes       prometheus.Counter
	replayBytes       prometheus.Counter
	sessionDuration   prometheus.Histogram
	limits            *prometheus.CounterVec
	readOnlyIgnored   *prometheus.CounterVec
}

// The limits counted in <ns>_limit_hits_total.
const (
	limitSessions           = "sessions"
	limitConnections        = "connections"
	limitSessionConnections = "session_connections"
	limitStartups           = "startups"
	limitInitTimeout        = "init_timeout"
	limitRequestSize        = "request_size"
)

func (m *Metrics) limitHit(limit string) { m.limits.WithLabelValues(limit).Inc() }

// The error types counted in <ns>_errors_total.
const (
	errorTypeInit              = "init"
	errorTypeRequest           = "request"
	errorTypeStart             = "start"
	errorTypeInput             = "input"
	errorTypeNetwork           = "network"
	errorTypeSlowConsumer      = "slow_consumer"
	errorTypeScreenUnavailable = "screen_unavailable"
	errorTypeScreen            = "screen"
)

// NewMetrics creates the collectors under namespace and registers them on
// reg. A nil reg creates them unregistered.
func NewMetrics(reg prometheus.Registerer, namespace string) (*Metrics, error) {
	m := &Metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "connections_total",
			Help: "Connections accepted by the reconnecting PTY server.",
		}),
		connectionsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "connections_active",
			Help: "Connections currently being served.",
		}),
		sessionsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sessions_active",
			Help: "Reconnecting PTY sessions currently alive.",
		}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sessions",
			Help: "Reconnecting PTY sessions currently alive, by backend.",
		}, []string{"backend"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "errors_total",
			Help: "Failures by type.",
		}, []string{"type"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "disconnects_total",
			Help: "Connection closes by disconnect reason.",
		}, []string{"reason"}),
		outputBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "output_bytes_total",
			Help: "Bytes of output produced by session processes.",
		}),
		replayBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "replay_bytes_total",
			Help: "Bytes of history replayed to attaching connections.",
		}),
		sessionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "session_duration_seconds",
			Help:    "Lifetime of ended sessions.",
			Buckets: []float64{1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 7 * 24 * 3600},
		}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "limit_hits_total",
			Help: "Connections refused or cut off at a configured limit, by limit.",
		}, []string{"limit"}),
		readOnlyIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "read_only_ignored_total",
			Help: "Requests from read-only connections that were ignored, by kind (input, resize).",
		}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.connections, m.connectionsActive, m.sessionsActive, m.errors,
		m.disconnects, m.outputBytes, m.replayBytes, m.sessionDuration, m.limits,
		m.sessions, m.readOnlyIgnored,
	} {
		if err := reg.Register(c); err != nil {
			return nil, xerrors.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) sessionStarted(backend BackendType) {
	m.sessionsActive.Inc()
	m.sessions.WithLabelValues(string(backend)).Inc()
}

func (m *Metrics) sessionEnded(backend BackendType, d time.Duration) {
	m.sessionsActive.Dec()
	m.sessions.WithLabelValues(string(backend)).Dec()
	m.sessionDuration.Observe(d.Seconds())
}
