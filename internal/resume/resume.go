// Package resume is the resume extension's header (docs/PROTOCOL.md): the
// one APC string a server sends first to a client that asked to resume,
// saying whether the output that follows continues where the client left
// off (delta) or redraws the terminal first (reset).
//
//	ESC _ rpty;v=1;mode=delta;offset=N ESC \
//	ESC _ rpty;v=1;mode=reset;offset=N;len=L ESC \
package resume

import (
	"bytes"
	"strconv"
	"strings"

	"golang.org/x/xerrors"
)

// Mode says what follows a header.
type Mode int

const (
	// Delta: the session's output from Offset on, nothing before it.
	Delta Mode = iota + 1
	// Reset: Len bytes that redraw the terminal, then the session's output
	// from Offset on.
	Reset
)

// Header is one resume header.
type Header struct {
	Mode   Mode
	Offset uint64
	// Len is the length of the redraw that follows a Reset header.
	Len uint64
}

// prefix starts every header; a stream that does not start with it has
// none.
const prefix = "\x1b_rpty;"

// terminator ends the APC string (ST).
const terminator = "\x1b\\"

// MaxLen bounds a header: a longer one is not a header.
const MaxLen = 128

// AppendHeader appends h, encoded, to dst.
func AppendHeader(dst []byte, h Header) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, "v=1;mode="...)
	if h.Mode == Reset {
		dst = append(dst, "reset;offset="...)
		dst = strconv.AppendUint(dst, h.Offset, 10)
		dst = append(dst, ";len="...)
		dst = strconv.AppendUint(dst, h.Len, 10)
	} else {
		dst = append(dst, "delta;offset="...)
		dst = strconv.AppendUint(dst, h.Offset, 10)
	}
	return append(dst, terminator...)
}

// Status is what Parse found at the start of a stream.
type Status int

const (
	// Found: a header, n bytes long.
	Found Status = iota + 1
	// NeedMore: the bytes so far could still start a header.
	NeedMore
	// Absent: the stream does not start with a header.
	Absent
)

// Parse looks for a header at the start of b, which may be only the first
// bytes of the stream. A string that starts like a header but is not a
// valid one is an error.
func Parse(b []byte) (h Header, n int, status Status, err error) {
	if len(b) < len(prefix) {
		if bytes.HasPrefix([]byte(prefix), b) {
			return h, 0, NeedMore, nil
		}
		return h, 0, Absent, nil
	}
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return h, 0, Absent, nil
	}
	end := bytes.Index(b[:min(len(b), MaxLen)], []byte(terminator))
	if end < 0 {
		if len(b) >= MaxLen {
			return h, 0, 0, xerrors.Errorf("resume header: no terminator within %d bytes", MaxLen)
		}
		return h, 0, NeedMore, nil
	}
	h, err = parseFields(string(b[len(prefix):end]))
	if err != nil {
		return h, 0, 0, err
	}
	return h, end + len(terminator), Found, nil
}

func parseFields(s string) (Header, error) {
	var h Header
	var version, offset, length string
	var mode string
	seen := map[string]bool{}
	for s != "" {
		var field string
		field, s, _ = strings.Cut(s, ";")
		key, value, ok := strings.Cut(field, "=")
		if !ok || seen[key] {
			return h, xerrors.Errorf("resume header: bad field %q", field)
		}
		seen[key] = true
		switch key {
		case "v":
			version = value
		case "mode":
			mode = value
		case "offset":
			offset = value
		case "len":
			length = value
		}
		// Unknown keys are for later versions of v=1 to add.
	}
	if version != "1" {
		return h, xerrors.Errorf("resume header: version %q, want 1", version)
	}
	var err error
	if h.Offset, err = strconv.ParseUint(offset, 10, 64); err != nil {
		return h, xerrors.Errorf("resume header: offset: %w", err)
	}
	switch mode {
	case "delta":
		h.Mode = Delta
	case "reset":
		h.Mode = Reset
		if h.Len, err = strconv.ParseUint(length, 10, 64); err != nil {
			return h, xerrors.Errorf("resume header: len: %w", err)
		}
	default:
		return h, xerrors.Errorf("resume header: mode %q", mode)
	}
	return h, nil
}
