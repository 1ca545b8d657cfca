package reconnectingpty

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/xerrors"
)

// requestChunk is the most input one connection holds at a time: a data
// string is decoded and written to the terminal in pieces of this size, so
// a connection's memory does not grow with the size of its requests.
const requestChunk = 32 << 10

// errRequestTooLarge is a request over Config.MaxRequestSize.
var errRequestTooLarge = xerrors.New("request too large")

// maxRequestDepth is how deeply an unknown key's value may nest, as in
// encoding/json.
const maxRequestDepth = 10000

// requestSyntaxError is a request that is not what PROTOCOL.md section 2
// allows: malformed JSON, or a key of the wrong type.
type requestSyntaxError struct {
	msg    string
	offset int64 // byte offset in the request stream
}

func (e *requestSyntaxError) Error() string {
	return e.msg + " at byte " + strconv.FormatInt(e.offset, 10) + " of the request stream"
}

// requestReader decodes the request stream (PROTOCOL.md section 2) without
// buffering a request whole: the data string goes to the terminal in
// chunks as it is decoded. It accepts what encoding/json accepts for a
// Request (keys are matched case-insensitively, unknown keys are skipped,
// invalid UTF-8 becomes U+FFFD), except that a malformed request may have
// written part of its data before the error ends the connection.
type requestReader struct {
	r   *bufio.Reader
	max int

	off   int64 // bytes consumed from the stream
	n     int   // bytes of the current request
	inReq bool
	chunk []byte
	emit  func([]byte) error
	// dataKeys counts the data keys decoded, for the fuzz test: a request
	// with two of them is where the stream and encoding/json differ.
	dataKeys int
	// ping is the heartbeat token of the request next returned last, if
	// hasPing (the link extension's "ping" key).
	ping    uint64
	hasPing bool
}

func newRequestReader(r io.Reader, max int) *requestReader {
	return &requestReader{r: bufio.NewReaderSize(r, 4<<10), max: max}
}

// next reads one request, passing its data to emit in chunks as it is
// decoded, and returns its height and width (zero when absent). It returns
// io.EOF at the end of the stream between requests, io.ErrUnexpectedEOF
// inside one, errRequestTooLarge for a request (from its first byte to
// its last) longer than max bytes, a *requestSyntaxError for a malformed
// one, an error from emit as is, or the error reading the stream.
func (rr *requestReader) next(emit func([]byte) error) (height, width uint16, err error) {
	rr.emit = emit
	rr.ping, rr.hasPing = 0, false
	defer func() {
		rr.inReq = false
		// An idle connection keeps no large buffer.
		if cap(rr.chunk) > 4<<10 {
			rr.chunk = nil
		}
		rr.chunk = rr.chunk[:0]
	}()
	var c byte
	for {
		c, err = rr.r.ReadByte()
		if err != nil {
			return 0, 0, err // io.EOF between requests is the end of the stream
		}
		if !isSpace(c) {
			break
		}
		rr.off++
	}
	rr.inReq, rr.n = true, 0
	if err := rr.count(); err != nil {
		return 0, 0, err
	}
	switch c {
	case 'n':
		return 0, 0, rr.literal("ull")
	case '{':
	default:
		return 0, 0, rr.syntax("request is not a JSON object")
	}
	if c, err = rr.nextToken(); err != nil {
		return 0, 0, err
	}
	if c == '}' {
		return 0, 0, nil
	}
	for {
		if c != '"' {
			return 0, 0, rr.syntax("want a key")
		}
		key, err := rr.key()
		if err != nil {
			return 0, 0, err
		}
		if c, err = rr.nextToken(); err != nil {
			return 0, 0, err
		}
		if c != ':' {
			return 0, 0, rr.syntax("want ':' after a key")
		}
		if c, err = rr.nextToken(); err != nil {
			return 0, 0, err
		}
		switch {
		case strings.EqualFold(key, "data"):
			rr.dataKeys++
			err = rr.dataValue(c)
		case strings.EqualFold(key, "height"):
			height, err = rr.sizeValue(c, height)
		case strings.EqualFold(key, "width"):
			width, err = rr.sizeValue(c, width)
		case strings.EqualFold(key, "ping") && c >= '0' && c <= '9':
			// Any other value is skipped, as a server without the link
			// extension skips this key.
			rr.ping, err = rr.uintValue(c, 64)
			rr.hasPing = err == nil
		default:
			err = rr.skipValue(c)
		}
		if err != nil {
			return 0, 0, err
		}
		if c, err = rr.nextToken(); err != nil {
			return 0, 0, err
		}
		switch c {
		case '}':
			if err := rr.flush(); err != nil {
				return 0, 0, err
			}
			return height, width, nil
		case ',':
			if c, err = rr.nextToken(); err != nil {
				return 0, 0, err
			}
		default:
			return 0, 0, rr.syntax("want ',' or '}' after a value")
		}
	}
}

func (rr *requestReader) syntax(msg string) error {
	return &requestSyntaxError{msg: "decode request: " + msg, offset: rr.off}
}

// count adds a consumed byte to the current request and enforces max.
func (rr *requestReader) count() error {
	rr.off++
	if rr.inReq {
		rr.n++
		if rr.n > rr.max {
			return xerrors.Errorf("%w: over %d bytes", errRequestTooLarge, rr.max)
		}
	}
	return nil
}

// readByte consumes one byte.
func (rr *requestReader) readByte() (byte, error) {
	c, err := rr.r.ReadByte()
	if err != nil {
		if xerrors.Is(err, io.EOF) && rr.inReq {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return c, rr.count()
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace consumes whitespace and returns the next byte, consumed.
func (rr *requestReader) skipSpace() (byte, error) {
	for {
		c, err := rr.r.ReadByte()
		if err != nil {
			if xerrors.Is(err, io.EOF) && rr.inReq {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if !isSpace(c) {
			rr.r.UnreadByte() //nolint:errcheck // just read
			return rr.readByte()
		}
		if err := rr.count(); err != nil {
			return 0, err
		}
	}
}

// nextToken is skipSpace inside a request.
func (rr *requestReader) nextToken() (byte, error) { return rr.skipSpace() }

func (rr *requestReader) literal(rest string) error {
	for i := 0; i < len(rest); i++ {
		c, err := rr.readByte()
		if err != nil {
			return err
		}
		if c != rest[i] {
			return rr.syntax("invalid literal")
		}
	}
	return nil
}

// key reads a key whose opening quote is consumed. Keys longer than any
// known one are consumed but not kept.
func (rr *requestReader) key() (string, error) {
	var kept []byte
	err := rr.stringBody(func(p []byte) error {
		if len(kept) <= 16 {
			kept = append(kept, p...)
		}
		return nil
	})
	return string(kept), err
}

// dataValue decodes the data key's value, whose first byte is c.
func (rr *requestReader) dataValue(c byte) error {
	switch c {
	case '"':
		return rr.stringBody(rr.appendData)
	case 'n':
		return rr.literal("ull")
	}
	return rr.syntax("data is not a string")
}

func (rr *requestReader) appendData(p []byte) error {
	for len(p) > 0 {
		if len(rr.chunk) == requestChunk {
			if err := rr.flush(); err != nil {
				return err
			}
		}
		n := min(len(p), requestChunk-len(rr.chunk))
		rr.chunk = append(rr.chunk, p[:n]...)
		p = p[n:]
	}
	return nil
}

// flush hands the decoded data so far to emit.
func (rr *requestReader) flush() error {
	if len(rr.chunk) == 0 {
		return nil
	}
	err := rr.emit(rr.chunk)
	rr.chunk = rr.chunk[:0]
	return err
}

// sizeValue decodes a height or width, whose first byte is c; null keeps
// the previous value, as encoding/json does.
func (rr *requestReader) sizeValue(c byte, prev uint16) (uint16, error) {
	if c == 'n' {
		return prev, rr.literal("ull")
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, rr.syntax("size is not a number")
	}
	v, err := rr.uintValue(c, 16)
	return uint16(v), err
}

// uintValue reads a number whose first byte is c as an unsigned integer of
// bits bits.
func (rr *requestReader) uintValue(c byte, bits int) (uint64, error) {
	lit := []byte{c}
	for {
		b, err := rr.r.ReadByte()
		if err != nil {
			if xerrors.Is(err, io.EOF) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if !(b >= '0' && b <= '9' || b == '.' || b == 'e' || b == 'E' || b == '+' || b == '-') {
			rr.r.UnreadByte() //nolint:errcheck // just read
			break
		}
		if err := rr.count(); err != nil {
			return 0, err
		}
		if len(lit) < 32 {
			lit = append(lit, b)
		}
	}
	if len(lit) > 1 && lit[0] == '0' || len(lit) > 2 && lit[0] == '-' && lit[1] == '0' {
		return 0, rr.syntax("invalid number")
	}
	v, err := strconv.ParseUint(string(lit), 10, bits)
	if err != nil {
		return 0, rr.syntax(strconv.Quote(string(lit)) + " is not a whole number from 0 to " + strconv.FormatUint(1<<bits-1, 10))
	}
	return v, nil
}

// skipValue consumes a value of an unknown key, whose first byte is c,
// keeping nothing of it.
func (rr *requestReader) skipValue(c byte) error {
	switch {
	case c == '"':
		return rr.stringBody(func([]byte) error { return nil })
	case c == 'n':
		return rr.literal("ull")
	case c == 't':
		return rr.literal("rue")
	case c == 'f':
		return rr.literal("alse")
	case c == '-' || c >= '0' && c <= '9':
		_, err := rr.skipNumber(c)
		return err
	case c == '{' || c == '[':
		return rr.skipContainer(c)
	}
	return rr.syntax("invalid value")
}

// skipNumber consumes a number whose first byte is c and checks its grammar.
func (rr *requestReader) skipNumber(c byte) (int, error) {
	digits := func() (int, error) {
		n := 0
		for {
			b, err := rr.r.ReadByte()
			if err != nil {
				if xerrors.Is(err, io.EOF) {
					return n, io.ErrUnexpectedEOF
				}
				return n, err
			}
			if b < '0' || b > '9' {
				rr.r.UnreadByte() //nolint:errcheck // just read
				return n, nil
			}
			if err := rr.count(); err != nil {
				return n, err
			}
			n++
		}
	}
	if c == '-' {
		b, err := rr.readByte()
		if err != nil {
			return 0, err
		}
		if b < '0' || b > '9' {
			return 0, rr.syntax("invalid number")
		}
		c = b
	}
	if c == '0' {
		if n, err := digits(); err != nil || n > 0 {
			if err != nil {
				return 0, err
			}
			return 0, rr.syntax("invalid number")
		}
	} else if _, err := digits(); err != nil {
		return 0, err
	}
	peek := func() (byte, error) {
		b, err := rr.r.Peek(1)
		if err != nil {
			if xerrors.Is(err, io.EOF) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		return b[0], nil
	}
	b, err := peek()
	if err != nil {
		return 0, err
	}
	if b == '.' {
		_, _ = rr.readByte()
		if n, err := digits(); err != nil || n == 0 {
			if err != nil {
				return 0, err
			}
			return 0, rr.syntax("invalid number")
		}
		if b, err = peek(); err != nil {
			return 0, err
		}
	}
	if b == 'e' || b == 'E' {
		_, _ = rr.readByte()
		if b, err = peek(); err != nil {
			return 0, err
		}
		if b == '+' || b == '-' {
			_, _ = rr.readByte()
		}
		if n, err := digits(); err != nil || n == 0 {
			if err != nil {
				return 0, err
			}
			return 0, rr.syntax("invalid number")
		}
	}
	return 0, nil
}

// skipContainer consumes an object or array whose opening byte is open,
// checking its grammar with a stack of what is open.
func (rr *requestReader) skipContainer(open byte) error {
	// Nesting is bounded by the request size, and costs a bit per level.
	stack := []byte{open}
	// expect: what may come next inside the innermost container.
	const (
		wantFirst  = iota // a value or key, or the closing bracket
		wantValue         // a value (or key) after a comma
		wantSep           // a comma or the closing bracket
		wantColon         // after a key
		wantObjVal        // a value after a colon
	)
	state := wantFirst
	for len(stack) > 0 {
		c, err := rr.nextToken()
		if err != nil {
			return err
		}
		top := stack[len(stack)-1]
		inObj := top == '{'
		switch state {
		case wantSep:
			switch {
			case c == ',':
				state = wantValue
			case inObj && c == '}' || !inObj && c == ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1] == '{' {
					state = wantSep
				} else {
					state = wantSep
				}
			default:
				return rr.syntax("want ',' or a closing bracket")
			}
			continue
		case wantColon:
			if c != ':' {
				return rr.syntax("want ':' after a key")
			}
			state = wantObjVal
			continue
		}
		// A value, a key, or (first only) a closing bracket.
		if state == wantFirst && (inObj && c == '}' || !inObj && c == ']') {
			stack = stack[:len(stack)-1]
			state = wantSep
			continue
		}
		if inObj && state != wantObjVal {
			if c != '"' {
				return rr.syntax("want a key")
			}
			if err := rr.stringBody(func([]byte) error { return nil }); err != nil {
				return err
			}
			state = wantColon
			continue
		}
		if c == '{' || c == '[' {
			if len(stack) >= maxRequestDepth {
				return rr.syntax("nested too deep")
			}
			stack = append(stack, c)
			state = wantFirst
			continue
		}
		if err := rr.skipValue(c); err != nil {
			return err
		}
		state = wantSep
	}
	return nil
}

// stringBody decodes a string whose opening quote is consumed, through its
// closing quote, passing the decoded bytes to out in pieces. It decodes as
// encoding/json does: each invalid UTF-8 byte and each unpaired surrogate
// escape becomes U+FFFD.
func (rr *requestReader) stringBody(out func([]byte) error) error {
	var piece [utf8.UTFMax * 2]byte
	for {
		// Fast path: a run of plain ASCII already buffered goes out as is.
		if buf, _ := rr.r.Peek(rr.r.Buffered()); len(buf) > 0 {
			k := 0
			for k < len(buf) && buf[k] >= 0x20 && buf[k] < utf8.RuneSelf && buf[k] != '"' && buf[k] != '\\' {
				k++
			}
			if k > 0 {
				if room := rr.max - rr.n; rr.inReq && k > room {
					k = room + 1 // the byte over the limit fails in count
				}
				if err := out(buf[:k]); err != nil {
					return err
				}
				_, _ = rr.r.Discard(k)
				rr.off += int64(k)
				if rr.inReq {
					rr.n += k
					if rr.n > rr.max {
						return xerrors.Errorf("%w: over %d bytes", errRequestTooLarge, rr.max)
					}
				}
				continue
			}
		}
		c, err := rr.readByte()
		if err != nil {
			return err
		}
		switch {
		case c == '"':
			return nil
		case c < 0x20:
			return rr.syntax("control character in a string")
		case c == '\\':
			r, err := rr.escape()
			if err != nil {
				return err
			}
			if err := out(utf8.AppendRune(piece[:0], r)); err != nil {
				return err
			}
		case c < utf8.RuneSelf:
			piece[0] = c
			if err := out(piece[:1]); err != nil {
				return err
			}
		default:
			// A multibyte character: its other bytes, if valid, follow.
			// Each is peeked only after a continuation byte, so the string
			// is still open and the peek waits for nothing unowed.
			seq := append(piece[:0:len(piece)], c)
			for k := 1; k < utf8.UTFMax; k++ {
				p, err := rr.r.Peek(k)
				if err != nil || p[k-1] < 0x80 || p[k-1] > 0xbf {
					break
				}
				seq = append(seq[:1], p...)
			}
			r, size := utf8.DecodeRune(seq)
			if r == utf8.RuneError && size == 1 {
				if err := out([]byte(string(utf8.RuneError))); err != nil {
					return err
				}
				continue
			}
			for i := 1; i < size; i++ {
				if _, err := rr.readByte(); err != nil {
					return err
				}
			}
			if err := out(seq[:size]); err != nil {
				return err
			}
		}
	}
}

// escape decodes an escape sequence whose backslash is consumed.
func (rr *requestReader) escape() (rune, error) {
	c, err := rr.readByte()
	if err != nil {
		return 0, err
	}
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := rr.hex4()
		if err != nil {
			return 0, err
		}
		if !utf16.IsSurrogate(r) {
			return r, nil
		}
		// A high surrogate may pair with a \u escape right after it.
		// Two bytes follow any escape of a complete request (the closing
		// quote and brace); six only if they begin another escape.
		if next, err := rr.r.Peek(2); err == nil && next[0] == '\\' && next[1] == 'u' {
			next, _ = rr.r.Peek(6)
			if r2, ok := parseHex4(next[2:]); len(next) == 6 && ok {
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					for i := 0; i < 6; i++ {
						if _, err := rr.readByte(); err != nil {
							return 0, err
						}
					}
					return dec, nil
				}
			}
		}
		return utf8.RuneError, nil
	}
	return 0, rr.syntax("invalid escape")
}

func (rr *requestReader) hex4() (rune, error) {
	var h [4]byte
	for i := range h {
		c, err := rr.readByte()
		if err != nil {
			return 0, err
		}
		h[i] = c
	}
	r, ok := parseHex4(h[:])
	if !ok {
		return 0, rr.syntax("invalid \\u escape")
	}
	return r, nil
}

func parseHex4(h []byte) (rune, bool) {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}
