package vt

// Options configure a Terminal.
type Options struct {
	// Scrollback is the number of lines kept above the normal screen; 0
	// keeps none.
	Scrollback int
}

// modes are the mode flags a client must get back after a reattach.
type modes struct {
	appCursor, appKeypad, bracketedPaste, insert, origin, wraparound bool
	reverseWrap, sendFocus, convertEOL, cursorHidden, syncOutput     bool
	// optBlink is xterm.js's cursorBlink option, which ?12 sets.
	optBlink bool
	mouse    mouseProtocol
	mouseEnc mouseEncoding
	// cursorStyle 0 means the default (block, as the option's default);
	// cursorBlink is meaningful only when cursorStyle is not 0.
	cursorStyle cursorStyle
	// blinkSet tells whether DECSCUSR chose blinking (cursorBlink) or
	// the option (optBlink) applies.
	blinkSet, cursorBlink bool
}

type mouseProtocol uint8

const (
	mouseNone mouseProtocol = iota
	mouseX10
	mouseVT200
	mouseDrag
	mouseAny
)

type mouseEncoding uint8

const (
	mouseEncDefault mouseEncoding = iota
	mouseEncSGR
	mouseEncSGRPixels
)

type cursorStyle uint8

const (
	cursorDefault cursorStyle = iota
	cursorBlock
	cursorUnderline
	cursorBar
)

// pen is the attribute set the next printed character gets, kept the way
// xterm.js keeps it so that DECSC/DECRC and underline styles behave alike.
type pen struct {
	fg, bg color
	flags  uint16
	// hasExt mirrors xterm.js's HAS_EXTENDED bit, which DECSC/DECRC save
	// and restore with the colours while the extended attributes stay.
	hasExt  bool
	ulStyle uint8
	// link is the open OSC 8 link (see extTable), 0 for none; ulColor the
	// SGR 58 underline colour. Printed cells get them while hasExt is set.
	link    uint32
	ulColor color
}

// attrs is what a cell printed with p shows, its extended attributes'
// slot aside (Terminal.penChanged).
func (p pen) attrs() attrs {
	a := attrs{fg: p.fg, bg: p.bg, flags: p.flags}
	if p.flags&attrUnderline != 0 {
		switch {
		case p.hasExt && p.link != 0:
			a.ul = 5 // xterm.js shows a link's underline dashed
		case p.hasExt:
			a.ul = p.ulStyle
		default:
			a.ul = 1
		}
	}
	return a
}

func (p *pen) updateExt() { p.hasExt = p.ulStyle != 0 || p.link != 0 }

// charset is a designation: 0 (ASCII) or the final byte naming a table.
type charset byte

// savedCursor is what DECSC keeps (per buffer).
type savedCursor struct {
	x, y    int // y is absolute: scrollback lines above plus screen row
	fg, bg  color
	flags   uint16
	hasExt  bool
	charset charset
}

// buffer is the normal or the alternate screen.
type buffer struct {
	// lines are the rows, top first: a window of base once the whole
	// screen has scrolled (see slideUp).
	lines                   []*line
	base                    []*line
	x, y                    int
	scrollTop, scrollBottom int
	tabs                    []bool
	saved                   savedCursor
}

// Terminal is a terminal state machine: it parses output and keeps the
// screen a terminal would show. It is not safe for concurrent use.
type Terminal struct {
	rows, cols    int
	scrollbackMax int

	normal, alt buffer
	altActive   bool
	buf         *buffer // the active one
	sb          scrollback

	pen      pen
	penAttrs attrs // pen.attrs() with its extended attributes' slot, kept current
	modes    modes
	charsets [4]charset
	gl       int
	// active is the charset GL maps through; usually charsets[gl], but
	// DECRC restores it alone, as xterm.js does.
	active charset
	table  *[95]rune // active's map for 0x20..0x7e, nil for ASCII
	title  string

	// joinWidth is the width of the previous printed character while a
	// combining mark may still join it (xterm.js precedingJoinState), else 0.
	joinWidth int

	// Parser state.
	state   pstate
	collect uint32
	params  params
	// fastFinal is the final byte fastCSI found.
	fastFinal byte
	osc       []byte
	oscID     int32
	oscMode   uint8 // oscNone, oscID, oscPayload, oscAbort
	// utf8 holds a partial UTF-8 sequence carried over from the last Write.
	utf8    [4]byte
	utf8Len int

	answer  bool
	replies []byte

	// ext holds the links and underline colours cells refer to; last, as
	// only a pen change reads it.
	ext extTable
}

// Size limits: New and Resize clamp to them, so that a client asking for
// an absurd size cannot make a terminal take gigabytes.
const (
	maxRows = 1000
	maxCols = 1000
)

// New returns a terminal of rows x cols, clamped to 1..1000 rows and
// 2..1000 columns (xterm.js needs 2 columns).
func New(rows, cols int, opts Options) *Terminal {
	rows, cols = clampSize(rows, cols)
	t := &Terminal{rows: rows, cols: cols, scrollbackMax: max(opts.Scrollback, 0)}
	t.osc = make([]byte, 0, 64)
	t.reset()
	return t
}

func clampSize(rows, cols int) (int, int) {
	return clampInt(rows, 1, maxRows), clampInt(cols, 2, maxCols)
}

// reset is RIS: everything but the title, the convertEol and cursor blink
// options and the size goes back to its initial state.
func (t *Terminal) reset() {
	t.normal = buffer{}
	t.alt = buffer{}
	t.initBuffer(&t.normal)
	t.normal.lines = make([]*line, t.rows)
	for i := range t.normal.lines {
		t.normal.lines[i] = newLine(t.cols, attrs{})
	}
	t.initBuffer(&t.alt)
	t.sb.reset(t.scrollbackMax)
	t.buf = &t.normal
	t.altActive = false
	t.pen = pen{}
	t.penAttrs = attrs{}
	t.ext = extTable{}
	// xterm.js keeps its options (?12 cursor blink, LNM) and the cursor's
	// visibility across RIS.
	t.modes = modes{wraparound: true, optBlink: t.modes.optBlink, convertEOL: t.modes.convertEOL,
		cursorHidden: t.modes.cursorHidden}
	t.charsets = [4]charset{}
	t.gl = 0
	t.setActive(0)
	t.joinWidth = 0
}

func (t *Terminal) initBuffer(b *buffer) {
	b.scrollTop, b.scrollBottom = 0, t.rows-1
	b.x, b.y = 0, 0
	b.saved = savedCursor{}
	b.tabs = make([]bool, t.cols+1)
	t.setupTabs(b, -1)
}

// setupTabs sets a stop every 8 columns, from the last stop before from
// when from >= 0, else from scratch.
func (t *Terminal) setupTabs(b *buffer, from int) {
	if from < 0 {
		clear(b.tabs)
		from = 0
	} else if !b.tab(from) {
		from = t.prevStop(b, from)
	}
	for i := from; i < t.cols; i += 8 {
		b.setTab(i, true)
	}
}

func (b *buffer) tab(x int) bool { return x >= 0 && x < len(b.tabs) && b.tabs[x] }

func (b *buffer) setTab(x int, on bool) {
	if x < 0 {
		return
	}
	for x >= len(b.tabs) {
		b.tabs = append(b.tabs, false)
	}
	b.tabs[x] = on
}

func (t *Terminal) nextStop(b *buffer, x int) int {
	for {
		x++
		if b.tab(x) || x >= t.cols {
			break
		}
	}
	return clampInt(x, 0, t.cols-1)
}

func (t *Terminal) prevStop(b *buffer, x int) int {
	for {
		x--
		if b.tab(x) || x <= 0 {
			break
		}
	}
	return clampInt(x, 0, t.cols-1)
}

func clampInt(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// ybase is the number of lines above the active screen.
func (t *Terminal) ybase() int {
	if t.altActive {
		return 0
	}
	return t.sb.len()
}

// Compact encodes the scrollback lines that still wait as they left the
// screen. Lines scrolled off during a flood wait so that those pushed out
// of a full scrollback soon after are never encoded; call Compact now and
// then while output flows, and when it pauses, so that memory does not
// stay at a line of cells per line. While lines keep arriving (one was
// pushed since the last Compact) their cells are kept for the lines to
// come; a Compact with no line pushed since the one before lets them go,
// so Compact until HeldLines is 0, and so do the screen's lines' copies of
// their text (kept for the scrollback while lines arrive). Anything that
// reads the scrollback encodes it first.
func (t *Terminal) Compact() {
	if !t.sb.compact() {
		return
	}
	for _, b := range []*buffer{&t.normal, &t.alt} {
		for _, ln := range b.lines {
			ln.plain, ln.chars = false, nil
		}
	}
}

// PendingLines is how many scrollback lines wait unencoded.
func (t *Terminal) PendingLines() int { return t.sb.pending() }

// HeldLines is how many lines' worth of cells the scrollback holds beyond
// its encoded lines: those waiting unencoded and those kept for reuse.
// Compact lets them go once lines stop arriving.
func (t *Terminal) HeldLines() int { return t.sb.held() }

// Title returns the window title (OSC 0 or 2).
func (t *Terminal) Title() string { return t.title }

// Size returns the terminal's size.
func (t *Terminal) Size() (rows, cols int) { return t.rows, t.cols }

// SetAnswerQueries turns query answering on or off. While on, DA1, DA2,
// DSR 5 and 6 and DECRQM produce the replies xterm.js would send, for
// AppendReplies to collect; use it only while no client is attached (the
// attached client answers itself).
func (t *Terminal) SetAnswerQueries(on bool) {
	t.answer = on
	if !on {
		t.replies = t.replies[:0]
	}
}

// maxReplies bounds the pending replies; more are dropped.
const maxReplies = 4096

// AppendReplies appends the pending replies to dst and clears them.
func (t *Terminal) AppendReplies(dst []byte) []byte {
	dst = append(dst, t.replies...)
	t.replies = t.replies[:0]
	return dst
}

func (t *Terminal) reply(s ...string) {
	if !t.answer {
		return
	}
	n := 0
	for _, p := range s {
		n += len(p)
	}
	if len(t.replies)+n > maxReplies {
		return
	}
	for _, p := range s {
		t.replies = append(t.replies, p...)
	}
}
