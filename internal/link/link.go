// Package link is the link extension's wire format (docs/PROTOCOL.md,
// "Extension: link"): the frames a server sends a client that asked for the
// extension, carrying how much of the client's input the program has taken
// and the answer to the client's latest heartbeat.
//
//	ESC _ rpty;v=1;link=ID;in=N ESC \
//	ESC _ rpty;v=1;link=ID;in=N;pong=T ESC \
//
// ID is the client's own link ID (from its init), so a frame cannot be
// confused with a program's output: the program never sees the ID.
package link

import (
	"bytes"
	"strconv"
	"strings"

	"golang.org/x/xerrors"
)

// Frame is one server-to-client link frame.
type Frame struct {
	// In is how many bytes of the client's input (its input stream,
	// counted from 0 at the client's start) the program has been given.
	In uint64
	// Pong is the token of the heartbeat this frame answers; HasPong says
	// whether it answers one.
	Pong    uint64
	HasPong bool
}

// MaxIDLen bounds a link ID; MinIDLen is what a client must send for its
// frames to be unguessable by chance.
const (
	MaxIDLen = 64
	MinIDLen = 16
)

// ValidID reports whether id may name a link: MinIDLen to MaxIDLen
// characters from [A-Za-z0-9_-], so that it needs no escaping in a frame.
func ValidID(id string) bool {
	if len(id) < MinIDLen || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Prefix is how every frame for link id starts.
func Prefix(id string) []byte {
	return []byte("\x1b_rpty;v=1;link=" + id + ";")
}

const terminator = "\x1b\\"

// MaxFrameLen bounds a frame after its prefix.
const MaxFrameLen = 96

// AppendFrame appends f, encoded for link id, to dst.
func AppendFrame(dst []byte, id string, f Frame) []byte {
	dst = append(dst, "\x1b_rpty;v=1;link="...)
	dst = append(dst, id...)
	dst = append(dst, ";in="...)
	dst = strconv.AppendUint(dst, f.In, 10)
	if f.HasPong {
		dst = append(dst, ";pong="...)
		dst = strconv.AppendUint(dst, f.Pong, 10)
	}
	return append(dst, terminator...)
}

// Stripper takes a client's link frames out of the output stream, which
// may split them across reads anywhere.
type Stripper struct {
	prefix []byte
	held   []byte // a possible frame's start, kept from the last read
}

// NewStripper strips the frames of link id.
func NewStripper(id string) *Stripper {
	return &Stripper{prefix: Prefix(id)}
}

// Strip returns p without its frames, and the frames, in order. Bytes that
// may start a frame at the end of p are held for the next call; last says
// that no more bytes follow, so that held bytes are output. A string that
// starts like a frame but is not a valid one is an error.
func (s *Stripper) Strip(p []byte, last bool) (out []byte, frames []Frame, err error) {
	buf := p
	if len(s.held) > 0 {
		buf = append(s.held, p...)
		s.held = nil
	}
	out = make([]byte, 0, len(buf))
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, 0x1b)
		if i < 0 {
			out = append(out, buf...)
			break
		}
		out = append(out, buf[:i]...)
		buf = buf[i:]
		n := min(len(buf), len(s.prefix))
		if !bytes.Equal(buf[:n], s.prefix[:n]) {
			out = append(out, buf[0])
			buf = buf[1:]
			continue
		}
		if n < len(s.prefix) {
			if last {
				out = append(out, buf...)
			} else {
				s.held = bytes.Clone(buf)
			}
			break
		}
		rest := buf[len(s.prefix):]
		end := bytes.Index(rest[:min(len(rest), MaxFrameLen)], []byte(terminator))
		if end < 0 {
			if len(rest) >= MaxFrameLen || last {
				return out, frames, xerrors.Errorf("link frame: no terminator within %d bytes", MaxFrameLen)
			}
			s.held = bytes.Clone(buf)
			break
		}
		f, err := parseFields(string(rest[:end]))
		if err != nil {
			return out, frames, err
		}
		frames = append(frames, f)
		buf = rest[end+len(terminator):]
	}
	return out, frames, nil
}

func parseFields(s string) (Frame, error) {
	var f Frame
	seenIn := false
	for s != "" {
		var field string
		field, s, _ = strings.Cut(s, ";")
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return f, xerrors.Errorf("link frame: bad field %q", field)
		}
		var err error
		switch key {
		case "in":
			f.In, err = strconv.ParseUint(value, 10, 64)
			seenIn = true
		case "pong":
			f.Pong, err = strconv.ParseUint(value, 10, 64)
			f.HasPong = true
		}
		// Unknown keys are for later versions of v=1 to add.
		if err != nil {
			return f, xerrors.Errorf("link frame: %s: %w", key, err)
		}
	}
	if !seenIn {
		return f, xerrors.New("link frame: no in")
	}
	return f, nil
}
