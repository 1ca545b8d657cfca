package main

import (
	"strconv"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/vt"
)

// Predictive echo, as mosh does it and as the web page does
// (examples/rptyd/web/predict.js, whose algorithm this mirrors): a printable
// key typed at the end of the line is drawn at once on the user's terminal,
// underlined, until the program's own echo puts the same character in the
// same cell. Backspace takes back the last guess or, beyond the page,
// blanks the character before the cursor until the program does.
//
// The session's output is fed to a model of the screen (internal/vt) as it
// is written to the terminal. Before each piece of output, every guess
// shown is taken back by painting its cell again from the model (character,
// attributes, link) and putting the pen and cursor back, so that the
// terminal is always exactly what the program drew plus the guesses shown,
// and the program's bytes land on the terminal as the program left it.
//
// Guesses are drawn only on the cursor's row, and moved to with CHA
// (column only): the model's rows need not match the terminal's (it does
// not know where on the screen rpty started), only the cursor's row, whose
// content since the last line feed both got from the same bytes.
//
// Epochs: guesses are shown only once the program has confirmed one in
// the current epoch. An epoch starts with rpty, with every key other than
// a printable one, backspace or a cursor key, and with every wrong guess;
// so a program that does not echo (a password prompt, stty -echo) or draws
// keys elsewhere (readline's history search) never gets a guess shown.
// Nothing is predicted on the alternate screen, in insert or origin mode,
// with a charset other than ASCII, or mid-sequence.

const (
	defaultPredictThreshold = 30 * time.Millisecond
	// predictStale is how long a guess may wait for its echo (or three
	// round trips, if longer) before it is taken for wrong.
	predictStale = time.Second
)

// predictMode is the -predict flag.
type predictMode string

const (
	predictAuto predictMode = "auto" // while the round trip is at least the threshold
	predictOn   predictMode = "on"
	predictOff  predictMode = "off"
)

// guess is one predicted character, or (erase) a character backspace
// takes away: its cell (model screen row, column), what the cell held
// when it was typed, and when.
type guess struct {
	ch     string
	erase  bool
	y, x   int
	before string
	at     time.Time
}

// predictStats count what the predictor did, for tests.
type predictStats struct {
	predicted, confirmed, wrong, stale, epochs int
}

// predictor keeps the model of the screen and the guesses. It is not safe
// for concurrent use: the session calls it with its output lock held.
type predictor struct {
	mode      predictMode
	threshold time.Duration
	rtt       func() time.Duration
	now       func() time.Time
	model     *vt.Terminal

	pending   []guess // this epoch's guesses, in typing order
	confirmed bool    // the program confirmed one of this epoch's guesses
	shift     int     // cursor keys typed since the last guess, as columns
	shown     []guess // what is drawn on the terminal now
	// moved says the terminal's cursor was moved off the model's by
	// cursor keys, with no guess shown.
	moved bool
	// anchored says the model's rows are the terminal's (statusrow.go).
	anchored bool
	stats    predictStats
}

func newPredictor(mode predictMode, threshold time.Duration, rows, cols int, rtt func() time.Duration) *predictor {
	return &predictor{
		mode:      mode,
		threshold: threshold,
		rtt:       rtt,
		now:       time.Now,
		model:     vt.New(rows, cols, vt.Options{}),
	}
}

// active reports whether keys are predicted now.
func (p *predictor) active() bool {
	switch p.mode {
	case predictOff:
		return false
	case predictAuto:
		// 0: no heartbeat answered yet (or a server without them).
		if rtt := p.rtt(); rtt <= 0 || rtt < p.threshold {
			return false
		}
	}
	return p.drawable()
}

// drawable reports whether the model's state lets a guess be drawn and
// taken back exactly: the normal screen, text printed as itself in place,
// the parser between sequences and the cursor not waiting to wrap.
func (p *predictor) drawable() bool {
	m := p.model
	md := m.Modes()
	_, x := m.Cursor()
	_, cols := m.Size()
	// A link without an id cannot be opened again as the same link: the
	// pen that holds one could not be put back.
	uri, id := m.PenLink()
	return !m.AltScreen() && !md.Insert && !md.Origin && m.PlainCharset() && m.Idle() && x < cols &&
		(uri == "" || id != "")
}

func (p *predictor) newEpoch() {
	if len(p.pending) > 0 || p.confirmed {
		p.stats.epochs++
	}
	p.pending = p.pending[:0]
	p.confirmed = false
	p.shift = 0
}

// stop ends prediction: no guess is drawn again, and those shown go with
// the next output.
func (p *predictor) stop() {
	p.mode = predictOff
	p.newEpoch()
}

// next is the cell the next printable key goes to.
func (p *predictor) next() (y, x int) {
	if n := len(p.pending); n > 0 {
		last := p.pending[n-1]
		if last.erase {
			return last.y, last.x + p.shift
		}
		return last.y, last.x + 1 + p.shift
	}
	y, x = p.model.Cursor()
	return y, x + p.shift
}

// typed takes the keys the user typed, before they are sent, and returns
// the bytes that update the guesses on the terminal.
func (p *predictor) typed(keys []byte) []byte {
	out := p.undo(nil)
	if !p.active() {
		p.newEpoch()
		return out
	}
	for len(keys) > 0 {
		n := p.key(keys)
		if n == 0 {
			// Anything else (Enter, Ctrl-anything, other escape
			// sequences, non-ASCII): a new epoch, and nothing after it
			// in this read is predicted (its bytes may be the rest of a
			// sequence).
			p.newEpoch()
			break
		}
		keys = keys[n:]
	}
	return p.render(out)
}

// key predicts the key at the start of keys and returns its length, or 0
// if it is not one that is predicted.
func (p *predictor) key(keys []byte) int {
	_, cols := p.model.Size()
	switch {
	case len(keys) >= 3 && keys[0] == 0x1b && (keys[1] == '[' || keys[1] == 'O') && (keys[2] == 'C' || keys[2] == 'D'):
		if keys[2] == 'C' {
			p.shift++
		} else {
			p.shift--
		}
		return 3
	case keys[0] == 0x7f || keys[0] == '\b':
		n := len(p.pending)
		switch {
		case p.shift != 0:
			p.newEpoch()
		case n > 0 && !p.pending[n-1].erase:
			p.pending = p.pending[:n-1]
		default:
			// At the end of the line, the character before the cursor
			// goes.
			y, x := p.next()
			if _, w := p.model.Cell(y, x-1); x < 1 || w != 1 || p.cellAhead(y, x-1) == "" || !p.blankFrom(y, x) {
				p.newEpoch()
				return 1
			}
			before, _ := p.model.Cell(y, x-1)
			p.pending = append(p.pending, guess{erase: true, y: y, x: x - 1, before: before, at: p.now()})
			p.stats.predicted++
		}
		return 1
	case keys[0] >= ' ' && keys[0] <= '~':
		y, x := p.next()
		if x < 0 || x >= cols-1 || !p.blankFrom(y, x) {
			p.newEpoch()
			return 1
		}
		before, _ := p.model.Cell(y, x)
		p.pending = append(p.pending, guess{ch: string(keys[0]), y: y, x: x, before: before, at: p.now()})
		p.shift = 0
		p.stats.predicted++
		return 1
	}
	return 0
}

// cellAhead is what cell x of row y will hold once the guesses pending
// are confirmed: the model's text with the guesses laid over it.
func (p *predictor) cellAhead(y, x int) string {
	text, _ := p.model.Cell(y, x)
	for _, g := range p.pending {
		if g.y == y && g.x == x {
			text = g.ch // "" for an erase
		}
	}
	if text == " " {
		return ""
	}
	return text
}

// blankFrom reports whether row y will hold no text from column x on once
// the guesses pending are confirmed.
func (p *predictor) blankFrom(y, x int) bool {
	_, cols := p.model.Size()
	for i := max(x, 0); i < cols; i++ {
		if p.cellAhead(y, i) != "" {
			return false
		}
	}
	return true
}

// output takes the session's output and returns what to write to the
// terminal: the guesses taken back, the output, and the guesses still
// unconfirmed drawn again.
func (p *predictor) output(data []byte) []byte {
	out := p.undo(make([]byte, 0, len(data)+64))
	out = append(out, data...)
	_, _ = p.model.Write(data)
	p.noteAnchors(data)
	p.reconcile()
	return p.render(out)
}

// reconcile drops the guesses the program drew and ends the epoch on a
// wrong or stale one.
func (p *predictor) reconcile() {
	if len(p.pending) == 0 && p.shift == 0 {
		return
	}
	if !p.drawable() {
		p.newEpoch()
		return
	}
	cy, cx := p.model.Cursor()
	for len(p.pending) > 0 {
		g := p.pending[0]
		ch, _ := p.model.Cell(g.y, g.x)
		if g.erase {
			// Confirmed once the cell is blank and the cursor back on
			// it; the row left is a wrong guess.
			if cy != g.y {
				p.stats.wrong++
				p.newEpoch()
				break
			}
			// Or the key typed after it is there already.
			nextThere := len(p.pending) > 1 && !p.pending[1].erase && p.pending[1].x == g.x &&
				ch == p.pending[1].ch && ch != g.before
			if (ch == "" || ch == " ") && cx <= g.x || nextThere {
				p.pending = p.pending[1:]
				p.confirmed = true
				p.stats.confirmed++
				continue
			}
			break
		}
		moved := cy != g.y || cx > g.x
		if ch == g.ch && (g.before != g.ch || moved) {
			p.pending = p.pending[1:]
			p.confirmed = true
			p.stats.confirmed++
			continue
		}
		if moved {
			// The program went past the cell and drew something else,
			// or left the row.
			p.stats.wrong++
			p.newEpoch()
		}
		break
	}
	p.expire()
	if len(p.pending) == 0 {
		p.shift = 0
	}
}

// expire ends the epoch if its oldest guess waited too long for its echo.
func (p *predictor) expire() {
	if len(p.pending) > 0 && p.now().Sub(p.pending[0].at) > max(predictStale, 3*p.rtt()) {
		p.stats.stale++
		p.newEpoch()
	}
}

// tick is called now and then without output: a stale guess is taken
// back.
func (p *predictor) tick() []byte {
	if len(p.pending) == 0 {
		return nil
	}
	out := p.undo(nil)
	p.expire()
	return p.render(out)
}

// resize follows the terminal to a new size; the guesses are dropped.
func (p *predictor) resize(rows, cols int) []byte {
	out := p.undo(nil)
	p.newEpoch()
	p.model.Resize(rows, cols)
	// The terminal reflows on its own, maybe not as the model does.
	p.anchored = false
	return out
}

// render appends the bytes that draw the guesses to show and notes them as
// shown. The terminal's cursor and pen are the model's when it is called.
func (p *predictor) render(out []byte) []byte {
	if !p.confirmed || !p.active() {
		return out
	}
	if len(p.pending) == 0 {
		// Only cursor keys since the last echo: the cursor moves.
		_, x := p.next()
		_, cx := p.model.Cursor()
		_, cols := p.model.Size()
		if x = min(max(x, 0), cols-1); x != cx {
			p.moved = true
			out = cha(out, x)
		}
		return out
	}
	cy, _ := p.model.Cursor()
	for _, g := range p.pending {
		_, w := p.model.Cell(g.y, g.x)
		uri, id := p.model.CellLink(g.y, g.x)
		if g.y != cy || w != 1 || (uri != "" && id == "") {
			// Only over a narrow cell on the cursor's row, which undo
			// paints again exactly.
			break
		}
		out = cha(out, g.x)
		if g.erase {
			// A blank, with the cell's own attributes.
			out = p.model.AppendCellPen(out, g.y, g.x)
			out = append(out, ' ')
		} else {
			// Underlined, outside any link the program has open.
			out = append(out, "\x1b[0;4m\x1b]8;;\x1b\\"...)
			out = append(out, g.ch...)
		}
		p.shown = append(p.shown, g)
	}
	if len(p.shown) == 0 {
		return out
	}
	out = p.model.AppendPen(out)
	_, x := p.next()
	_, cols := p.model.Size()
	return cha(out, min(max(x, 0), cols-1))
}

// undo appends the bytes that take back the guesses shown: their cells
// painted again from the model, then the model's pen and cursor column.
func (p *predictor) undo(out []byte) []byte {
	if p.moved {
		p.moved = false
		_, x := p.model.Cursor()
		out = cha(out, x)
	}
	if len(p.shown) == 0 {
		return out
	}
	if x0, ok := p.erasedFrom(); ok {
		// The guesses stand on the end of the line that the program
		// erased (or never wrote): erasing it again, as the program did,
		// leaves it as the program left it, for terminals that keep
		// erased cells apart from blanks written over too (tmux does).
		out = cha(out, x0)
		out = p.model.AppendCellPen(out, p.shown[0].y, x0)
		out = append(out, "\x1b[K"...)
		p.shown = p.shown[:0]
	}
	for _, g := range p.shown {
		out = cha(out, g.x)
		out = p.model.AppendCellPen(out, g.y, g.x)
		if text, _ := p.model.Cell(g.y, g.x); text == "" {
			out = append(out, "\x1b[X"...) // an empty cell: erase it
		} else {
			out = append(out, text...)
		}
	}
	p.shown = p.shown[:0]
	out = p.model.AppendPen(out)
	_, x := p.model.Cursor()
	return cha(out, x)
}

// erasedFrom returns the column of the leftmost guess shown if every cell
// of its row from there on is empty, with the same attributes.
func (p *predictor) erasedFrom() (int, bool) {
	y, x0 := p.shown[0].y, p.shown[0].x
	for _, g := range p.shown {
		x0 = min(x0, g.x)
	}
	_, cols := p.model.Size()
	pen := p.model.AppendCellPen(nil, y, x0)
	var other []byte
	for x := x0; x < cols; x++ {
		if text, w := p.model.Cell(y, x); text != "" || w != 1 {
			return 0, false
		}
		if other = p.model.AppendCellPen(other[:0], y, x); string(other) != string(pen) {
			return 0, false
		}
	}
	return x0, true
}

// cha appends CHA, moving the cursor to column x (from 0) on its row.
func cha(out []byte, x int) []byte {
	out = append(out, "\x1b["...)
	out = strconv.AppendInt(out, int64(x+1), 10)
	return append(out, 'G')
}
