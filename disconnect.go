package reconnectingpty

// DisconnectReason says why a connection closed. Every close logs one
// "reconnecting pty closed" line with these fields:
//
//	connect_type          always "agent_to_client"
//	disconnect_reason     the reason below
//	disconnect_expected   true for normal operation, false for what an operator should investigate
//	disconnect_initiator  client, agent, server or network
//	disconnect_detail     free text, e.g. the underlying error
//	exit_code             the process's exit status for process_exited; otherwise 0 when expected, 1 when not
//
// The connection-report hook's disconnected(code, reason) receives the same
// exit_code and reason.
//
//	reason           expected  initiator  when
//	graceful         true      client     the client closed the connection
//	process_exited   true      agent      the session's process exited; output was flushed first
//	server_shutdown  true      server     the server is shutting down, or the connection's context ended
//	session_timeout  true      server     the session was closed for inactivity
//	session_closed   true      server     the session was closed through Server.CloseSession
//	network_error    false     network    reading from or writing to the connection failed
//	protocol_error   false     client     bad, truncated or late init, or a malformed request
//	start_failed     false     agent      the command could not be created or started
//	slow_consumer    false     server     the client fell too far behind the output and was cut off
//	limit_exceeded   false     server     a configured limit (sessions, connections, startups) refused the connection
//	server_upgrade   true      server     the server is handing its sessions to a new program image (Server.Upgrade); the client reconnects and resumes
type DisconnectReason string

// The disconnect reasons; see DisconnectReason for when each applies.
const (
	DisconnectGraceful       DisconnectReason = "graceful"
	DisconnectProcessExited  DisconnectReason = "process_exited"
	DisconnectServerShutdown DisconnectReason = "server_shutdown"
	DisconnectSessionTimeout DisconnectReason = "session_timeout"
	DisconnectSessionClosed  DisconnectReason = "session_closed"
	DisconnectNetworkError   DisconnectReason = "network_error"
	DisconnectProtocolError  DisconnectReason = "protocol_error"
	DisconnectStartFailed    DisconnectReason = "start_failed"
	DisconnectSlowConsumer   DisconnectReason = "slow_consumer"
	DisconnectLimitExceeded  DisconnectReason = "limit_exceeded"
	DisconnectServerUpgrade  DisconnectReason = "server_upgrade"
)

// DisconnectInitiator is the party whose action closed the connection.
type DisconnectInitiator string

// The initiators.
const (
	InitiatorClient  DisconnectInitiator = "client"
	InitiatorAgent   DisconnectInitiator = "agent"
	InitiatorServer  DisconnectInitiator = "server"
	InitiatorNetwork DisconnectInitiator = "network"
)

// ConnectTypeAgentToClient is the connect_type of every connection the
// Server serves.
const ConnectTypeAgentToClient = "agent_to_client"

type reasonInfo struct {
	expected  bool
	initiator DisconnectInitiator
}

var reasonTable = map[DisconnectReason]reasonInfo{
	DisconnectGraceful:       {true, InitiatorClient},
	DisconnectProcessExited:  {true, InitiatorAgent},
	DisconnectServerShutdown: {true, InitiatorServer},
	DisconnectSessionTimeout: {true, InitiatorServer},
	DisconnectSessionClosed:  {true, InitiatorServer},
	DisconnectNetworkError:   {false, InitiatorNetwork},
	DisconnectProtocolError:  {false, InitiatorClient},
	DisconnectStartFailed:    {false, InitiatorAgent},
	DisconnectSlowConsumer:   {false, InitiatorServer},
	DisconnectLimitExceeded:  {false, InitiatorServer},
	DisconnectServerUpgrade:  {true, InitiatorServer},
}

// Expected reports whether the reason is part of normal operation.
func (r DisconnectReason) Expected() bool { return reasonTable[r].expected }

// Initiator reports who caused a close for this reason.
func (r DisconnectReason) Initiator() DisconnectInitiator { return reasonTable[r].initiator }

// disconnect is the full attribution of one close.
type disconnect struct {
	reason   DisconnectReason
	detail   string
	exitCode int
	timeout  bool // the init timed out (counted as a limit hit)
}

// code is the exit_code field: the process status when it exited, else 0
// for expected closes and 1 for the rest.
func (d disconnect) code() int {
	if d.reason == DisconnectProcessExited {
		return d.exitCode
	}
	if d.reason.Expected() {
		return 0
	}
	return 1
}
