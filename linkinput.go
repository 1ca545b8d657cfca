package reconnectingpty

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxInputStreams bounds the link IDs a session remembers; the one used
// least recently is forgotten first. A forgotten client that reconnects
// has its resent input taken as new (docs/PROTOCOL.md, "Extension: link").
const maxInputStreams = 256

// inputStream is how much of one client's input (its link ID's) the
// program has been given. mu is held across a write to the terminal, so
// that two connections of one client (a dead one the server still holds
// and its replacement) never write the same bytes.
type inputStream struct {
	mu sync.Mutex
	// taken is written under mu, and read without it, so that answering a
	// heartbeat never waits for a write to the terminal.
	taken atomic.Uint64
	used  time.Time // guarded by inputStreams.mu
}

// inputStreams is a session's input streams by link ID.
type inputStreams struct {
	mu      sync.Mutex
	streams map[string]*inputStream
}

// get returns the stream of link id, creating it, as having been given
// everything before from, if the session does not know it.
func (s *inputStreams) get(id string, from uint64) *inputStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.streams[id]; ok {
		st.used = time.Now()
		return st
	}
	if s.streams == nil {
		s.streams = map[string]*inputStream{}
	}
	if len(s.streams) >= maxInputStreams {
		var oldest string
		var at time.Time
		for k, st := range s.streams {
			if oldest == "" || st.used.Before(at) {
				oldest, at = k, st.used
			}
		}
		delete(s.streams, oldest)
	}
	st := &inputStream{used: time.Now()}
	st.taken.Store(from)
	s.streams[id] = st
	return st
}

// taken is how much input the program has been given, per link ID (for
// an upgrade's handover; the session is frozen, so no write is under way).
func (s *inputStreams) taken() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.streams) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(s.streams))
	for id, st := range s.streams {
		out[id] = st.taken.Load()
	}
	return out
}

// restore makes the streams of a handed-over session.
func (s *inputStreams) restore(taken map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, n := range taken {
		if s.streams == nil {
			s.streams = map[string]*inputStream{}
		}
		st := &inputStream{used: time.Now()}
		st.taken.Store(n)
		s.streams[id] = st
	}
}

// linkInput is one connection's view of its client's input stream: where
// the next data byte it decodes belongs.
type linkInput struct {
	id   string // the client's link ID, which every frame carries
	st   *inputStream
	next uint64
}

// write gives the program the part of p it has not had yet, through
// write, which returns how much it wrote. Bytes before what the program
// has taken were sent before, on a connection that dropped: they are
// dropped here. A gap (p starting after what was taken) cannot come from a
// client that resends everything not acknowledged; it is taken as given.
func (l *linkInput) write(p []byte, write func([]byte) (int, error)) error {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	start := l.next
	l.next += uint64(len(p))
	if taken := l.st.taken.Load(); start < taken {
		skip := min(taken-start, uint64(len(p)))
		p = p[skip:]
		start += skip
	}
	if len(p) == 0 {
		return nil
	}
	n, err := write(p)
	l.st.taken.Store(start + uint64(n))
	return err
}

// taken is how much of the client's input the program has been given.
func (l *linkInput) taken() uint64 { return l.st.taken.Load() }
