package vt

import (
	"encoding/binary"
	"unicode/utf8"
)

// Write parses p and updates the screen. It never blocks and never fails:
// any byte sequence is accepted, and sequences (UTF-8 or escape) split
// across writes continue where they stopped.
func (t *Terminal) Write(p []byte) (int, error) {
	n := len(p)
	inPrint := false
	i := 0
	if t.utf8Len > 0 {
		i = t.finishUTF8(p, &inPrint)
	}
	for i < len(p) {
		b := p[i]
		if b >= 0x20 && b < 0x7f && t.state == stGround {
			if !inPrint {
				t.printStart()
				inPrint = true
			}
			i += t.printASCII(p[i:])
			continue
		}
		if t.state == stGround {
			switch b {
			case '\r', '\n':
				// The commonest controls, straight to their handlers.
				if inPrint {
					t.printEnd()
					inPrint = false
				}
				if b == '\r' {
					t.buf.x = 0
				} else {
					t.lineFeed()
				}
				t.joinWidth = 0
				i++
				continue
			case 0x1b:
				if n := t.fastCSI(p[i:]); n > 0 {
					if inPrint {
						// The sequence ends the run before it takes effect.
						inPrint = false
						t.printEnd()
					}
					t.csiDispatch(t.fastFinal)
					t.joinWidth = 0
					i += n
					continue
				}
			}
		}
		if b < 0x80 {
			t.advance(rune(b), &inPrint)
			i++
			continue
		}
		r, size, st := decodeUTF8(p[i:])
		switch st {
		case utf8OK:
			if r >= nonASCIIPrintable && t.state == stGround {
				// Printable: what advance would do, minus the lookup.
				if !inPrint {
					t.printStart()
					inPrint = true
				}
				t.printRune(r)
			} else {
				t.advance(r, &inPrint)
			}
			i += size
		case utf8Skip:
			i += size
		case utf8Short:
			t.utf8Len = copy(t.utf8[:], p[i:])
			i = len(p)
		}
	}
	if inPrint {
		t.printEnd()
	}
	return n, nil
}

type utf8Status uint8

const (
	utf8OK    utf8Status = iota
	utf8Skip             // drop size bytes (an invalid sequence or code point)
	utf8Short            // a valid prefix that the input ends in
)

// decodeUTF8 decodes the sequence at the start of p (p[0] >= 0x80) as
// xterm.js does: a bad continuation drops the bytes before it, which are
// then looked at again; an overlong form, a surrogate, U+FEFF or a code
// point past U+10FFFF is dropped whole.
func decodeUTF8(p []byte) (rune, int, utf8Status) {
	b := p[0]
	var need int
	var cp rune
	switch {
	case b&0xe0 == 0xc0:
		need, cp = 2, rune(b&0x1f)
	case b&0xf0 == 0xe0:
		need, cp = 3, rune(b&0x0f)
	case b&0xf8 == 0xf0:
		need, cp = 4, rune(b&0x07)
	default:
		return 0, 1, utf8Skip
	}
	for k := 1; k < need; k++ {
		if k >= len(p) {
			return 0, 0, utf8Short
		}
		if p[k]&0xc0 != 0x80 {
			return 0, k, utf8Skip
		}
		cp = cp<<6 | rune(p[k]&0x3f)
	}
	switch need {
	case 2:
		if cp < 0x80 {
			return 0, 1, utf8Skip
		}
	case 3:
		if cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfeff {
			return 0, 3, utf8Skip
		}
	case 4:
		if cp < 0x10000 || cp > utf8.MaxRune {
			return 0, 4, utf8Skip
		}
	}
	return cp, need, utf8OK
}

// finishUTF8 completes the sequence carried over from the last Write with
// the first bytes of p and returns how many bytes of p it used.
func (t *Terminal) finishUTF8(p []byte, inPrint *bool) int {
	var buf [4]byte
	have := copy(buf[:], t.utf8[:t.utf8Len])
	used := 0
	for {
		r, size, st := decodeUTF8(buf[:have])
		switch st {
		case utf8OK:
			t.utf8Len = 0
			t.advance(r, inPrint)
			return size - (have - used)
		case utf8Skip:
			t.utf8Len = 0
			// The carried bytes are a lead byte and valid continuations:
			// all are dropped, and input resumes at the offending byte.
			if size >= have-used {
				return size - (have - used)
			}
			return 0
		}
		if used >= len(p) {
			t.utf8Len = copy(t.utf8[:], buf[:have])
			return used
		}
		buf[have] = p[used]
		have++
		used++
	}
}

// fastCSI parses a plain CSI sequence (ESC [, an optional private marker,
// parameters, intermediates, final byte) wholly inside p into t.params,
// t.collect and t.fastFinal, the same as the state machine would, and
// returns its length; 0 when p holds anything else, which then takes the
// general path.
func (t *Terminal) fastCSI(p []byte) int {
	if len(p) < 3 || p[1] != '[' {
		return 0
	}
	t.params.reset()
	t.collect = 0
	i := 2
	if c := p[i]; c >= 0x3c && c <= 0x3f {
		t.collect = uint32(c)
		i++
	}
	for ; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= '0' && c <= '9':
			t.params.addDigit(int32(c - '0'))
		case c == ';':
			t.params.addParam(0)
		case c == ':':
			t.params.addSub(-1)
		default:
			goto inter
		}
	}
	return 0
inter:
	for ; i < len(p) && p[i] >= 0x20 && p[i] <= 0x2f; i++ {
		t.collect = t.collect<<8 | uint32(p[i])
	}
	if i < len(p) && p[i] >= 0x40 && p[i] <= 0x7e {
		t.fastFinal = p[i]
		return i + 1
	}
	return 0
}

// printableRun counts the leading bytes of p that are printable ASCII
// (0x20-0x7e), eight at a time in long runs: text is most of what a
// terminal parses.
func printableRun(p []byte) int {
	// Short runs (a word between colour changes) are done byte by byte
	// before a word at a time pays.
	i := 0
	for ; i < 8; i++ {
		if i == len(p) || p[i] < 0x20 || p[i] >= 0x7f {
			return i
		}
	}
	for ; i+8 <= len(p); i += 8 {
		if !printable8(binary.LittleEndian.Uint64(p[i:])) {
			break
		}
	}
	for ; i < len(p) && p[i] >= 0x20 && p[i] < 0x7f; i++ {
	}
	return i
}
