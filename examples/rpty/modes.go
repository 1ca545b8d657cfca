package main

import "bytes"

// resetModes switches off what a session's program may have switched on,
// leaving the screen alone: cursor visible, normal cursor keys and keypad,
// every mouse reporting mode and encoding, bracketed paste, default
// colours and attributes.
const resetModes = "\x1b[?25h\x1b[?1l\x1b>" +
	"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l" +
	"\x1b[?2004l\x1b[0m"

// leaveAltScreen goes back to the main screen and the cursor saved when
// the alternate screen was entered.
const leaveAltScreen = "\x1b[?1049l"

// modeTracker follows whether the output left the terminal on the
// alternate screen. Leaving it when it was never entered would move the
// cursor to the saved position (the top-left corner, if none was saved),
// so the exit sequence leaves it only when needed.
type modeTracker struct {
	altScreen bool
	carry     []byte // the end of the last write, which may start a sequence
}

// altSequences are the ways programs enter (h) and leave (l) the
// alternate screen.
var altSequences = [][]byte{
	[]byte("\x1b[?1049h"), []byte("\x1b[?1049l"),
	[]byte("\x1b[?1047h"), []byte("\x1b[?1047l"),
	[]byte("\x1b[?47h"), []byte("\x1b[?47l"),
}

// carryLen is how much of a write's end is kept: a sequence cut just
// before its last byte.
const carryLen = len("\x1b[?1049")

// scan notes the alternate screen switches in p, which may be split from
// the previous write at any byte.
func (m *modeTracker) scan(p []byte) {
	if len(m.carry) > 0 {
		joint := append(m.carry, p[:min(len(p), carryLen)]...)
		m.find(joint)
	}
	m.find(p)
	if len(p) >= carryLen {
		m.carry = append(m.carry[:0], p[len(p)-carryLen:]...)
		return
	}
	m.carry = append(m.carry, p...)
	m.carry = append(m.carry[:0], m.carry[max(0, len(m.carry)-carryLen):]...)
}

// find sets the state from the last switch in b, if there is one.
func (m *modeTracker) find(b []byte) {
	if bytes.IndexByte(b, 0x1b) < 0 {
		return
	}
	last := -1
	for i, seq := range altSequences {
		if j := bytes.LastIndex(b, seq); j > last {
			last = j
			m.altScreen = i%2 == 0
		}
	}
}

// resetSequence is what puts the terminal's modes back to normal.
func (m *modeTracker) resetSequence() string {
	if m.altScreen {
		return leaveAltScreen + resetModes
	}
	return resetModes
}
