package reconnectingpty

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"hash/crc32"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// This file is the handover's format: the state an upgrade writes for the
// new image, and the environment variable that tells the new image where
// the state and the descriptors are.
//
// Compatibility: a state is read by the release that wrote it and by the
// next one (N -> N+1). New fields are added, never renamed or retyped (gob
// skips fields a reader does not know and leaves missing ones zero), so
// the version stays the same as long as it can; only a change that a
// reader of the previous format could not take raises handoverVersion,
// and a reader accepts its own version and the one before. A rollback
// (N+1 -> N) works while both write the same version.

// HandoverEnv is the environment variable through which an upgrade tells
// the new program image where the handed-over state and descriptors are.
// Inherited reads it and removes it from the environment.
const HandoverEnv = "RECONNECTINGPTY_HANDOVER"

const (
	// handoverVersion is the format this release writes.
	// Format 2 carries a vt terminal as its state (vtState.Term) rather
	// than as a snapshot: a reader of format 1 would have taken such a
	// terminal for a blank one.
	handoverVersion = 2
	// handoverOldest is the oldest format this release reads.
	handoverOldest = 1
	// handoverMagic starts every state.
	handoverMagic = "RPTYHND\n"
	// handoverHeaderLen: magic, version (uint32), the lengths of the
	// description and of the bytes (uint64 each), CRC-32C of both
	// (uint32).
	handoverHeaderLen = len(handoverMagic) + 4 + 8 + 8 + 4
	// maxHandoverSize bounds what a new image reads.
	maxHandoverSize = 16 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// A state is a header and then, in format 2, the sessions' output and
// terminals back to back (the bytes) followed by a gob-encoded
// handoverState (the description), which refers to the bytes by offset,
// length and CRC-32C; the header's checksum is the description's. The
// bytes come first so that the old image can write each session's as soon
// as it has taken them, in parallel, before the description is known;
// each range's own checksum is checked as the state is read. Format 1 had
// the description first and one checksum over both. gob would copy every
// byte of the bytes a few times over, and they are most of a state.

// handoverState is everything the server hands to its next image besides
// descriptors.
type handoverState struct {
	// Written is when the old image wrote the state (wall clock), so that
	// the new one can tell how long the exec took.
	Written  time.Time
	Sessions []sessionState
}

// sessionState is one session as the new image takes it back.
type sessionState struct {
	ID      uuid.UUID
	Backend BackendType
	Command string
	PID     int
	// PTY is the PTY master's descriptor number in the new image.
	PTY                            int
	Started, LastInput, LastOutput time.Time
	Height, Width                  uint16
	// IdleDeadline is when the inactivity timer closes the session; zero
	// when it does not run (Timeout < 0).
	IdleDeadline time.Time
	// Closing is set when the session was asked to close: the new image
	// closes it for CloseReason and CloseDetail.
	Closing     bool
	CloseReason DisconnectReason
	CloseDetail string
	Ring        ringState
	VT          *vtState // vt only
	// Screen is a screen session's (whose PTY is its gate's
	// descriptor). Added with no version change: a reader that does not
	// know it refuses the backend, and so the state, and ends the
	// sessions cleanly.
	Screen *screenState
	// Inputs is, per link ID, how much of that client's input the program
	// has been given (the link extension): a client resends what it was
	// not told was taken, and the new image must drop what was. Added in
	// version 1 with no version change: an older reader ignores it.
	Inputs map[string]uint64
}

// ringState is a session's replay ring: the last bytes of output and how
// many were ever written.
type ringState struct {
	Total  uint64
	Held   []byte // in memory; in the bytes of a state, HeldAt
	HeldAt byteRange
}

// byteRange is where a field's bytes are among the bytes of a state, and
// (format 2) their CRC-32C.
type byteRange struct {
	Off, Len uint64
	Sum      uint32
}

// encodeHandover writes st, whose bytes are in memory, as a state.
func encodeHandover(w io.Writer, st *handoverState) error {
	desc, blobs := placeHandover(st)
	meta, err := handoverMeta(desc)
	if err != nil {
		return err
	}
	var blobLen uint64
	for _, b := range blobs {
		blobLen += uint64(len(b))
	}
	hdr := appendHandoverHeader(nil, uint64(len(meta)), blobLen, crc32.Checksum(meta, crcTable))
	for _, b := range append(append([][]byte{hdr}, blobs...), meta) {
		if _, err := w.Write(b); err != nil {
			return xerrors.Errorf("write handover state: %w", err)
		}
	}
	return nil
}

// handoverMeta gob-encodes a description.
func handoverMeta(desc *handoverState) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(desc); err != nil {
		return nil, xerrors.Errorf("encode handover state: %w", err)
	}
	return buf.Bytes(), nil
}

// placeHandover returns st's description, which refers to its bytes
// (blobs, in order) by range: they are written as they are.
func placeHandover(st *handoverState) (desc *handoverState, blobs [][]byte) {
	var at uint64
	place := func(b []byte) byteRange {
		r := byteRange{Off: at, Len: uint64(len(b)), Sum: crc32.Checksum(b, crcTable)}
		blobs = append(blobs, b)
		at += uint64(len(b))
		return r
	}
	d := *st
	d.Sessions = make([]sessionState, len(st.Sessions))
	for i, s := range st.Sessions {
		s.Ring.HeldAt, s.Ring.Held = place(s.Ring.Held), nil
		if s.VT != nil {
			v := *s.VT
			v.TermAt, v.Term = place(v.Term), nil
			s.VT = &v
		}
		d.Sessions[i] = s
	}
	return &d, blobs
}

func appendHandoverHeader(dst []byte, metaLen, blobLen uint64, sum uint32) []byte {
	return appendHandoverHeaderOf(dst, handoverVersion, metaLen, blobLen, sum)
}

func appendHandoverHeaderOf(dst []byte, version uint32, metaLen, blobLen uint64, sum uint32) []byte {
	dst = append(dst, handoverMagic...)
	dst = binary.BigEndian.AppendUint32(dst, version)
	dst = binary.BigEndian.AppendUint64(dst, metaLen)
	dst = binary.BigEndian.AppendUint64(dst, blobLen)
	return binary.BigEndian.AppendUint32(dst, sum)
}

// checkHandoverHeader checks a state's header and returns the lengths of
// its description and of its bytes.
func checkHandoverHeader(hdr []byte) (version uint32, metaLen, blobLen uint64, err error) {
	if len(hdr) < handoverHeaderLen {
		return 0, 0, 0, xerrors.Errorf("handover state header: %d bytes of %d: %w", len(hdr), handoverHeaderLen, io.ErrUnexpectedEOF)
	}
	if string(hdr[:len(handoverMagic)]) != handoverMagic {
		return 0, 0, 0, xerrors.New("not a handover state (bad magic)")
	}
	rest := hdr[len(handoverMagic):]
	version = binary.BigEndian.Uint32(rest)
	metaLen = binary.BigEndian.Uint64(rest[4:])
	blobLen = binary.BigEndian.Uint64(rest[12:])
	if version < handoverOldest || version > handoverVersion {
		return 0, 0, 0, xerrors.Errorf("handover state format %d: this release reads formats %d to %d", version, handoverOldest, handoverVersion)
	}
	if metaLen > maxHandoverSize || blobLen > maxHandoverSize-metaLen {
		return 0, 0, 0, xerrors.Errorf("handover state of %d+%d bytes is over the %d this release reads", metaLen, blobLen, maxHandoverSize)
	}
	return version, metaLen, blobLen, nil
}

// decodeHandoverBytes decodes a whole state held in memory (the memory
// file, mapped), refusing one of a version it does not know, a truncated
// one and one whose checksum does not match. The sessions' output and
// snapshots it returns are slices of buf, not copies.
func decodeHandoverBytes(buf []byte) (*handoverState, error) {
	version, metaLen, blobLen, err := checkHandoverHeader(buf)
	if err != nil {
		return nil, err
	}
	sum := binary.BigEndian.Uint32(buf[len(handoverMagic)+20:])
	body := buf[handoverHeaderLen:]
	if uint64(len(body)) < metaLen+blobLen {
		return nil, xerrors.Errorf("read handover state: %d bytes of %d: %w", len(body), metaLen+blobLen, io.ErrUnexpectedEOF)
	}
	body = body[:metaLen+blobLen]
	// Format 1: the description, then the bytes, one checksum over both.
	meta, blobs, checked := body[:metaLen], body[metaLen:], body
	if version >= 2 {
		// The bytes, then the description, with a checksum each.
		meta, blobs, checked = body[blobLen:], body[:blobLen], body[blobLen:]
	}
	if got := crc32.Checksum(checked, crcTable); got != sum {
		return nil, xerrors.Errorf("handover state is corrupt: checksum %08x, header says %08x", got, sum)
	}
	var st handoverState
	if err := gob.NewDecoder(bytes.NewReader(meta)).Decode(&st); err != nil {
		return nil, xerrors.Errorf("decode handover state: %w", err)
	}
	take := func(r byteRange) ([]byte, error) {
		if r.Off > uint64(len(blobs)) || r.Len > uint64(len(blobs))-r.Off {
			return nil, xerrors.Errorf("handover state refers to bytes %d+%d of %d", r.Off, r.Len, len(blobs))
		}
		b := blobs[r.Off : r.Off+r.Len : r.Off+r.Len]
		if version >= 2 {
			if got := crc32.Checksum(b, crcTable); got != r.Sum {
				return nil, xerrors.Errorf("handover state is corrupt: bytes %d+%d have checksum %08x, the description says %08x", r.Off, r.Len, got, r.Sum)
			}
		}
		return b, nil
	}
	for i := range st.Sessions {
		s := &st.Sessions[i]
		if s.Ring.Held, err = take(s.Ring.HeldAt); err != nil {
			return nil, err
		}
		if s.VT != nil {
			if s.VT.Snapshot, err = take(s.VT.SnapshotAt); err != nil {
				return nil, err
			}
			if s.VT.Term, err = take(s.VT.TermAt); err != nil {
				return nil, err
			}
		}
	}
	return &st, nil
}

// handoverEnv is what HandoverEnv says: where the state is, and each
// session's process and PTY master, so that even a state the new image
// refuses leaves no session it cannot end.
type handoverEnv struct {
	// execAt is when the old image executed the new one, for its log.
	execAt    time.Time
	state     int
	sessions  []envSession
	listeners map[string]int
	// conns are connections accepted and not served yet (see
	// upgradeconns.go); a reader that does not know the field leaves
	// them open, unserved.
	conns []int
}

type envSession struct{ pid, pty int }

// listenerName is what a carried listener may be called: it must fit the
// variable's syntax.
var listenerName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// String is the variable's value: "v1 state=FD at=UNIXNANO
// sessions=PID:FD,... listeners=NAME:FD,... conns=FD,...". A reader
// ignores a field it does not know.
func (e handoverEnv) String() string {
	var b strings.Builder
	b.WriteString("v1 state=")
	b.WriteString(strconv.Itoa(e.state))
	if !e.execAt.IsZero() {
		b.WriteString(" at=" + strconv.FormatInt(e.execAt.UnixNano(), 10))
	}
	b.WriteString(" sessions=")
	for i, s := range e.sessions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s.pid) + ":" + strconv.Itoa(s.pty))
	}
	b.WriteString(" listeners=")
	first := true
	for name, fd := range e.listeners {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(name + ":" + strconv.Itoa(fd))
	}
	if len(e.conns) > 0 {
		b.WriteString(" conns=")
		for i, fd := range e.conns {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(fd))
		}
	}
	return b.String()
}

func parseHandoverEnv(v string) (handoverEnv, error) {
	e := handoverEnv{state: -1, listeners: map[string]int{}}
	fields := strings.Fields(v)
	if len(fields) == 0 || fields[0] != "v1" {
		return e, xerrors.Errorf("%s=%q: unknown syntax (want v1)", HandoverEnv, v)
	}
	for _, f := range fields[1:] {
		key, val, ok := strings.Cut(f, "=")
		if !ok {
			return e, xerrors.Errorf("%s: field %q has no '='", HandoverEnv, f)
		}
		var list []string
		if val != "" {
			list = strings.Split(val, ",")
		}
		switch key {
		case "at":
			if ns, err := strconv.ParseInt(val, 10, 64); err == nil {
				e.execAt = time.Unix(0, ns)
			}
		case "state":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return e, xerrors.Errorf("%s: state descriptor %q", HandoverEnv, val)
			}
			e.state = n
		case "sessions":
			for _, item := range list {
				a, b, _ := strings.Cut(item, ":")
				pid, err1 := strconv.Atoi(a)
				fd, err2 := strconv.Atoi(b)
				if err1 != nil || err2 != nil || pid <= 0 || fd < 0 {
					return e, xerrors.Errorf("%s: session %q: want PID:FD", HandoverEnv, item)
				}
				e.sessions = append(e.sessions, envSession{pid: pid, pty: fd})
			}
		case "listeners":
			for _, item := range list {
				name, b, _ := strings.Cut(item, ":")
				fd, err := strconv.Atoi(b)
				if err != nil || fd < 0 || !listenerName.MatchString(name) {
					return e, xerrors.Errorf("%s: listener %q: want NAME:FD", HandoverEnv, item)
				}
				e.listeners[name] = fd
			}
		case "conns":
			for _, item := range list {
				fd, err := strconv.Atoi(item)
				if err != nil || fd < 0 {
					return e, xerrors.Errorf("%s: connection %q: want FD", HandoverEnv, item)
				}
				e.conns = append(e.conns, fd)
			}
		default:
			// A later release may add fields; this one ignores them.
		}
	}
	if e.state < 0 {
		return e, xerrors.Errorf("%s=%q names no state", HandoverEnv, v)
	}
	return e, nil
}
