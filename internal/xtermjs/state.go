// The JSON that testdata/render.js prints for one terminal decodes into
// State; this file is the contract between the Node side and the Go side.

package xtermjs

// Cell is one cell of a rendered line. It travels as a JSON array
// [chars, width, fg, bg, flags, underline, link, underline colour] to keep
// dumps small.
type Cell struct {
	// Chars is the cell's text: a rune or grapheme cluster; "" for an empty
	// cell and for the second half of a wide character. xterm.js tells an
	// erased or never-written cell ("") from a printed space (" ").
	// A cell cleared by an erase keeps the erasing pen's background.
	Chars string
	// Width is 1, 2 for a wide character, 0 for the cell a wide one covers.
	Width int
	// FG and BG are ColorDefault, a 16-colour index 0..15 (SGR 30-37,
	// 90-97), ColorP256|index for a 256-colour one (SGR 38;5;N, also below
	// 16), or ColorRGB|0xRRGGBB: xterm.js keeps the three modes apart, and
	// draws them differently (bold brightens a 16-colour foreground only).
	FG, BG int32
	// Flags is a set of the Attr* bits.
	Flags uint16
	// Underline is the underline style: 0 none, 1 single, 2 double,
	// 3 curly, 4 dotted, 5 dashed.
	Underline uint8
	// Link is the OSC 8 hyperlink the cell opens: 0 none, else n for
	// State.Links[n-1]. In the pen, the link it holds (printed cells get
	// it while the pen has extended attributes).
	Link int
	// UnderlineColor is the SGR 58 colour, encoded as FG (ColorDefault:
	// the foreground's). xterm.js keeps it only with extended attributes
	// (a cell underlined with a style, or linked); the pen's is the one it
	// holds. SGR 59 sets it to white (ColorRGB|0xffffff) in xterm.js.
	UnderlineColor int32
}

// Link is an OSC 8 hyperlink. A dump numbers its links in the order the
// cells (screen rows, then NormalLines, then the pen) first show them, so
// equal states have equal lists: what is compared is each link's target
// and id and which cells share one (cells of one link highlight
// together on hover).
type Link struct {
	// URI is the target; "" when xterm.js has dropped the link's data
	// (with the line it was opened on): its cells keep the dashed
	// underline but open nothing.
	URI string
	// ID is the id= parameter, "" for none (then every OSC 8 opens a new
	// link, even to the same URI).
	ID string
}

// Colour encodings of Cell.FG and Cell.BG.
const (
	ColorDefault int32 = -1
	ColorRGB     int32 = 1 << 24
	ColorP256    int32 = 1 << 25
)

// Attribute bits of Cell.Flags.
const (
	AttrBold uint16 = 1 << iota
	AttrDim
	AttrItalic
	AttrUnderline
	AttrBlink
	AttrInverse
	AttrInvisible
	AttrStrikethrough
	AttrOverline
)

// Modes are the terminal modes a client must get back after a reattach.
type Modes struct {
	ApplicationCursorKeys bool // DECCKM, ?1
	ApplicationKeypad     bool // DECKPAM/DECKPNM, ?66
	BracketedPaste        bool // ?2004
	Insert                bool // IRM, 4
	Origin                bool // DECOM, ?6
	Wraparound            bool // DECAWM, ?7
	ReverseWraparound     bool // ?45
	SendFocus             bool // ?1004
	// MouseTracking is "none", "x10" (?9), "vt200" (?1000), "drag" (?1002)
	// or "any" (?1003).
	MouseTracking string
	// MouseEncoding is "default", "sgr" (?1006) or "sgr_pixels" (?1016);
	// xterm.js implements no other (1005 and 1015 are not tracked by it).
	MouseEncoding string
}

// State is everything the differential tests compare.
type State struct {
	Rows, Cols int
	// Buffer is "normal" or "alternate": the active buffer.
	Buffer string
	// CursorX, CursorY are 0-based, relative to the visible screen.
	// While a wrap is pending (a character was printed in the last column
	// with autowrap on), xterm.js reports CursorX == Cols.
	CursorX, CursorY int
	CursorVisible    bool
	// CursorStyle is "block", "underline" or "bar"; CursorBlink whether it
	// blinks (DECSCUSR).
	CursorStyle string
	CursorBlink bool
	// Title is the last title set by OSC 0 or OSC 2; "" if none was.
	Title string
	Modes Modes
	// ScrollTop, ScrollBottom are the active buffer's scroll region,
	// 0-based and inclusive.
	ScrollTop, ScrollBottom int
	// Lines are the visible rows of the active buffer; Wrapped[i] is true
	// when row i is the soft-wrapped continuation of row i-1.
	Lines   [][]Cell
	Wrapped []bool
	// Scrollback is the text (right-trimmed) of the normal buffer's lines
	// above its visible screen, oldest first; ScrollbackWrapped as Wrapped.
	Scrollback        []string
	ScrollbackWrapped []bool
	// NormalLines is the normal buffer's visible screen while the
	// alternate one is active (what leaving it would show); nil otherwise.
	NormalLines [][]Cell `json:",omitempty"`
	// ScrollbackCells are the scrollback's cells, oldest line first, when
	// the Request asked (Links numbers their links after the screen's and
	// the pen's); nil otherwise.
	ScrollbackCells [][]Cell `json:",omitempty"`
	// Pen is the attribute set the next printed character gets (Chars "",
	// Width 0).
	Pen Cell
	// SavedX, SavedY are the active buffer's DECSC-saved cursor position.
	SavedX, SavedY int
	// Charsets are the designations of G0..G3 ("B" ASCII, "0" DEC special
	// graphics, "A" UK, ...; "" undesignated, which means ASCII), and GL
	// the one invoked (0 after SI, 1 after SO).
	Charsets [4]string
	GL       int
	// Tabs are the columns with a tab stop, ascending.
	Tabs []int
	// Links are the hyperlinks that Cell.Link numbers.
	Links []Link
}
