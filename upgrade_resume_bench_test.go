package reconnectingpty_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/resume"
)

// resumer is a client attached to an idle session that, when its
// connection drops, redials at once and resumes from what it has; it
// records how long after a given moment its first resume header came.
type resumer struct {
	addr   string
	id     uuid.UUID
	offset uint64
	conn   net.Conn

	mu      sync.Mutex
	since   time.Time // the upgrade's start
	resumed time.Duration
	// blackout is from the drop to the resume.
	blackout time.Duration
	mode     resume.Mode
	err      error
	closed   bool
}

// attach makes the first connection and takes the session's redraw.
func (r *resumer) attach() error {
	c, h, err := r.connect()
	if err != nil {
		return err
	}
	r.conn, r.offset = c, h.Offset
	return nil
}

// connect dials, asks to resume from r.offset, and reads the header and
// any redraw after it.
func (r *resumer) connect() (net.Conn, resume.Header, error) {
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		return nil, resume.Header{}, err
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	init := reconnectingpty.Init{ID: r.id, Height: 24, Width: 80, BackendType: "vt", Resume: true, Offset: r.offset}
	if err := reconnectingpty.WriteInit(c, init); err != nil {
		_ = c.Close()
		return nil, resume.Header{}, err
	}
	var buf []byte
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, one); err != nil {
			_ = c.Close()
			return nil, resume.Header{}, err
		}
		buf = append(buf, one[0])
		h, _, status, err := resume.Parse(buf)
		if err != nil || status == resume.Absent {
			_ = c.Close()
			return nil, resume.Header{}, io.ErrUnexpectedEOF
		}
		if status == resume.Found {
			if h.Mode == resume.Reset {
				if _, err := io.CopyN(io.Discard, c, int64(h.Len)); err != nil {
					_ = c.Close()
					return nil, h, err
				}
			}
			_ = c.SetDeadline(time.Time{})
			return c, h, nil
		}
	}
}

// follow waits for the connection to drop, then redials until it has
// resumed once; the result is in r.
func (r *resumer) follow() {
	_, _ = io.Copy(io.Discard, r.conn) // idle: nothing comes until the drop
	dropped := time.Now()
	_ = r.conn.Close()
	for {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return
		}
		c, h, err := r.connect()
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		r.resumed, r.blackout, r.mode, r.conn = time.Since(r.since), time.Since(dropped), h.Mode, c
		if h.Mode == resume.Delta && h.Offset != r.offset {
			r.err = io.ErrUnexpectedEOF
		}
		r.mu.Unlock()
		_ = c.Close()
		return
	}
}

// resumeLatencies attaches a resumer to each of ids, and after start()
// (which upgrades) waits until each has resumed; it returns their
// latencies from start's call and from their drop, and fails if any was
// not a delta.
func resumeLatencies(b *testing.B, addr string, ids []uuid.UUID, start func()) (fromStart, fromDrop []time.Duration) {
	rs := make([]*resumer, len(ids))
	for i, id := range ids {
		rs[i] = &resumer{addr: addr, id: id}
		if err := rs[i].attach(); err != nil {
			b.Fatalf("attach %s: %v", id, err)
		}
	}
	now := time.Now()
	for _, r := range rs {
		r.since = now
	}
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.follow()
		}()
	}
	start()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		for _, r := range rs {
			r.mu.Lock()
			r.closed = true
			if r.conn != nil {
				_ = r.conn.Close()
			}
			r.mu.Unlock()
		}
		<-done
		b.Fatal("clients did not resume within 2 minutes")
	}
	for _, r := range rs {
		if r.mode != resume.Delta || r.err != nil {
			b.Fatalf("session %s resumed with mode %d (%v), want a delta from offset %d", r.id, r.mode, r.err, r.offset)
		}
		fromStart = append(fromStart, r.resumed)
		fromDrop = append(fromDrop, r.blackout)
	}
	return fromStart, fromDrop
}
