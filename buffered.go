package reconnectingpty

import (
	"os/exec"

	"cdr.dev/slog/v3"
)

// bufferedGreeting is the buffered backend's greeting: the last BufferSize
// bytes of output, cut so that they never start inside a UTF-8 character
// or an escape sequence.
type bufferedGreeting struct {
	size int
}

func (bufferedGreeting) output([]byte)          {}
func (bufferedGreeting) resized(uint16, uint16) {}
func (bufferedGreeting) attached(int)           {}
func (bufferedGreeting) finish()                {}

func (g bufferedGreeting) greet(dst []byte, ring *replayRing) []byte {
	if dst == nil {
		return ring.replay(g.size)
	}
	return ring.appendReplay(dst, g.size)
}

// startBuffered starts a buffered session: the command on a PTY of its own,
// replaying the last BufferSize bytes of output to every attaching
// connection. onDone, if set, is called once the session is over.
func startBuffered(s *Server, cmd *exec.Cmd, height, width uint16, logger slog.Logger, onDone func()) (*ptySession, error) {
	return startPTYSession(s, BackendBuffered, bufferedGreeting{size: s.cfg.BufferSize}, cmd, height, width, logger, onDone)
}
