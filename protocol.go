package reconnectingpty

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"math"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty/internal/link"
)

// MaxInitSize is the largest init JSON the two-byte length prefix can describe.
const MaxInitSize = math.MaxUint16

// BackendType names the implementation behind a session.
type BackendType string

const (
	// BackendAuto lets the server choose: Config.Backend, whose default
	// is vt.
	BackendAuto BackendType = "auto"
	// BackendBuffered runs the command on a PTY and replays the last bytes
	// of its output on attach.
	BackendBuffered BackendType = "buffered"
	// BackendScreen keeps the command inside a GNU screen session, so a
	// reattach repaints the program's current screen.
	BackendScreen BackendType = "screen"
	// BackendVT runs the command on a PTY like buffered and feeds its
	// output to an in-process terminal emulator, so a reattach repaints
	// the program's current screen, modes and scrollback exactly
	// (Config.ScrollbackLines of history), at about buffered's cost. While
	// nobody is attached the emulator answers the basic terminal queries
	// (DA, cursor position, DECRQM) so that a program asking on start does
	// not hang. It is an extension value (docs/PROTOCOL.md): old servers
	// reject it.
	BackendVT BackendType = "vt"
)

// parseBackendType accepts the values PROTOCOL.md allows, empty meaning auto.
func parseBackendType(s string) (BackendType, error) {
	switch BackendType(s) {
	case "", BackendAuto:
		return BackendAuto, nil
	case BackendBuffered, BackendScreen, BackendVT:
		return BackendType(s), nil
	}
	return "", xerrors.Errorf("unknown backend type %q (want %q, %q, %q or %q)", s, BackendVT, BackendBuffered, BackendScreen, BackendAuto)
}

// Init is the first frame a client sends: it names the session and how to
// create it. The field names are the wire names (encoding/json, no tags).
type Init struct {
	ID            uuid.UUID
	Height        uint16
	Width         uint16
	Command       string
	Container     string
	ContainerUser string
	BackendType   string
	// Resume asks for the resume extension (docs/PROTOCOL.md): the output
	// starts with one header saying whether a delta or a reset follows.
	// Without it the output is exactly that of the original protocol.
	Resume bool `json:",omitempty"`
	// Offset is how many bytes of the session's output the client has
	// received so far; only meaningful with Resume.
	Offset uint64 `json:",omitempty"`
	// Link asks for the link extension (docs/PROTOCOL.md): heartbeats,
	// and acknowledgements of the input the program has taken. It is the
	// client's link ID, 16 to 64 characters from [A-Za-z0-9_-], the same
	// for every connection of one client; it names the client's input
	// stream, and every frame the server sends the client carries it.
	Link string `json:",omitempty"`
	// InputOffset is where in the client's input stream the first data
	// byte of this connection is; only meaningful with Link.
	InputOffset uint64 `json:",omitempty"`
}

// Request is one object of the request stream that follows the init.
type Request struct {
	Data   string `json:"data,omitempty"`
	Height uint16 `json:"height,omitempty"`
	Width  uint16 `json:"width,omitempty"`
	// Ping is a heartbeat of the link extension: a server that granted
	// the extension answers it with a frame carrying the same token.
	// Zero is not sent.
	Ping uint64 `json:"ping,omitempty"`
}

// WriteInit encodes init as a length-prefixed frame on w in a single Write,
// so that a message-oriented transport carries it as one message.
func WriteInit(w io.Writer, init Init) error {
	body, err := encodeInit(init)
	if err != nil {
		return err
	}
	frame := make([]byte, 2+len(body))
	binary.LittleEndian.PutUint16(frame, uint16(len(body)))
	copy(frame[2:], body)
	if _, err := w.Write(frame); err != nil {
		return xerrors.Errorf("write init: %w", err)
	}
	return nil
}

// encodeInit is the JSON of an init frame, if it fits in one.
func encodeInit(init Init) ([]byte, error) {
	body, err := json.Marshal(init)
	if err != nil {
		return nil, xerrors.Errorf("encode init: %w", err)
	}
	if len(body) > MaxInitSize {
		return nil, xerrors.Errorf("encode init: %d bytes exceeds the %d-byte limit", len(body), MaxInitSize)
	}
	return body, nil
}

// WriteRequest encodes one request object on w.
func WriteRequest(w io.Writer, req Request) error {
	body, err := json.Marshal(req)
	if err != nil {
		return xerrors.Errorf("encode request: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return xerrors.Errorf("write request: %w", err)
	}
	return nil
}

// initError is a failure to read a valid init frame. protocol is false when
// the transport failed rather than the client sending bad bytes.
type initError struct {
	protocol bool
	err      error
}

func (e *initError) Error() string { return e.err.Error() }
func (e *initError) Unwrap() error { return e.err }

// ReadInit reads exactly one init frame from r and nothing more: every byte
// after it belongs to the request stream.
func ReadInit(r io.Reader) (Init, error) {
	var init Init
	var lenBuf [2]byte
	if n, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return init, readInitError("read init length", n, 2, err)
	}
	size := int(binary.LittleEndian.Uint16(lenBuf[:]))
	if size == 0 {
		return init, &initError{protocol: true, err: xerrors.New("read init: length is zero")}
	}
	body := make([]byte, size)
	if n, err := io.ReadFull(r, body); err != nil {
		return init, readInitError("read init body", n, size, err)
	}
	if err := json.Unmarshal(body, &init); err != nil {
		var typeErr *json.UnmarshalTypeError
		if xerrors.As(err, &typeErr) && (typeErr.Field == "Offset" || typeErr.Field == "InputOffset") {
			return init, &initError{protocol: true, err: xerrors.Errorf("decode init: %s %s is not an unsigned integer: %w", typeErr.Field, typeErr.Value, err)}
		}
		return init, &initError{protocol: true, err: xerrors.Errorf("decode init: %w", err)}
	}
	if init.ID == uuid.Nil {
		return init, &initError{protocol: true, err: xerrors.New("decode init: missing or nil ID")}
	}
	if init.Link != "" && !link.ValidID(init.Link) {
		return init, &initError{protocol: true, err: xerrors.Errorf("decode init: Link %q is not 16 to 64 characters from [A-Za-z0-9_-]", init.Link)}
	}
	// What is read must be writable: an init that grows past the limit
	// when encoded again (its "<" become "\u003c", its invalid UTF-8
	// U+FFFD) could not be passed on by a proxy or a client that
	// re-encodes it, so it is refused here too.
	if _, err := encodeInit(init); err != nil {
		return init, &initError{protocol: true, err: xerrors.Errorf("decode init: does not encode again within the frame: %w", err)}
	}
	return init, nil
}

func readInitError(what string, got, want int, err error) error {
	if xerrors.Is(err, io.EOF) || xerrors.Is(err, io.ErrUnexpectedEOF) {
		// The client hung up before completing the frame it owes us.
		return &initError{protocol: true, err: xerrors.Errorf("%s: truncated after %d of %d bytes: %w", what, got, want, err)}
	}
	return &initError{err: xerrors.Errorf("%s: %w", what, err)}
}
