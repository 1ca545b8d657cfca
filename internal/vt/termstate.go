package vt

import (
	"encoding/binary"
	"maps"
	"slices"
	"unicode/utf8"

	"golang.org/x/xerrors"
)

// A terminal's state as bytes, for handing a terminal to another program
// image (an upgrade): AppendState writes everything a Terminal holds, as
// it holds it, and DecodeState makes a Terminal of it that is the same in
// every respect (its snapshot, and how it takes further output). Nothing
// is drawn or parsed either way: the screens' lines are written in the
// scrollback's compact line encoding (runs of cells sharing attributes),
// and the scrollback's lines are copied as they are stored.
//
// The encoding starts with its version (stateVersion); DecodeState reads
// only the versions it knows. A change to what a Terminal holds must
// change this file, and the version with it
// (TestStateCoversEveryTerminalField says when).

// stateVersion is the encoding AppendState writes.
const stateVersion = 1

// AppendState appends the terminal's state to dst. It encodes the
// scrollback lines still waiting unencoded (as any reader of the
// scrollback does) and changes nothing else.
func (t *Terminal) AppendState(dst []byte) []byte {
	// One allocation: the stored scrollback's length bounds its lines'
	// (each run's attributes take 13 bytes there, one or two here).
	need := 512 + len(t.title) + len(t.osc) + len(t.replies) + 2*t.rows*t.cols + t.sb.rawN*2*t.cols
	for i := range t.sb.n {
		need += len(t.sb.encodedAt(i).data) + 2
	}
	w := stateWriter{b: slices.Grow(dst, need)}
	w.uv(stateVersion)
	w.uv(uint64(t.rows))
	w.uv(uint64(t.cols))
	w.uv(uint64(t.scrollbackMax))

	m := t.modes
	w.bools(m.appCursor, m.appKeypad, m.bracketedPaste, m.insert, m.origin, m.wraparound,
		m.reverseWrap, m.sendFocus, m.convertEOL, m.cursorHidden, m.syncOutput, m.optBlink,
		m.blinkSet, m.cursorBlink, t.altActive, t.answer)
	w.b = append(w.b, byte(m.mouse), byte(m.mouseEnc), byte(m.cursorStyle))
	w.b = append(w.b, byte(t.charsets[0]), byte(t.charsets[1]), byte(t.charsets[2]), byte(t.charsets[3]),
		byte(t.gl), byte(t.active))
	w.str(t.title)
	w.uv(uint64(t.joinWidth))

	p := t.pen
	w.u32(uint32(p.fg))
	w.u32(uint32(p.bg))
	w.uv(uint64(p.flags))
	w.bools(p.hasExt)
	w.b = append(w.b, p.ulStyle)
	w.uv(uint64(p.link))
	w.u32(uint32(p.ulColor))
	w.attrs(t.penAttrs)

	// The parser, mid-sequence or not.
	w.b = append(w.b, byte(t.state), t.fastFinal, t.oscMode)
	w.u32(t.collect)
	pr := &t.params
	w.uv(uint64(pr.n))
	for i := range pr.n {
		w.u32(uint32(pr.vals[i]))
		w.b = append(w.b, pr.subStart[i], pr.subEnd[i])
	}
	w.uv(uint64(pr.subN))
	for i := range pr.subN {
		w.u32(uint32(pr.sub[i]))
	}
	w.bools(pr.rejectDig, pr.rejectSub, pr.digitSub)
	w.str(string(t.osc))
	w.u32(uint32(t.oscID))
	w.str(string(t.utf8[:t.utf8Len]))
	w.str(string(t.replies))

	t.appendExt(&w)
	w.buffer(&t.normal)
	w.buffer(&t.alt)

	sb := &t.sb
	n := sb.len()
	w.uv(uint64(n))
	for i := range n {
		l := sb.at(i)
		w.line(l.data, l.wrapped)
	}
	return w.b
}

// appendExt writes the links and underline colours cells refer to, with
// the free lists that say which a new one takes.
func (t *Terminal) appendExt(w *stateWriter) {
	x := &t.ext
	w.uv(uint64(len(x.slots)))
	for _, d := range x.slots {
		w.uv(uint64(d.link))
		w.u32(uint32(d.ul))
	}
	w.uv(uint64(len(x.bySlot)))
	for d, s := range x.bySlot {
		w.uv(uint64(d.link))
		w.u32(uint32(d.ul))
		w.uv(uint64(s))
	}
	w.uv(uint64(len(x.free)))
	for _, s := range x.free {
		w.uv(uint64(s))
	}
	w.uv(uint64(len(x.links)))
	for _, l := range x.links {
		w.str(l.uri)
		w.str(l.id)
	}
	w.uv(uint64(len(x.byID)))
	for d, l := range x.byID {
		w.str(d.uri)
		w.str(d.id)
		w.uv(uint64(l))
	}
	w.uv(uint64(len(x.freeLinks)))
	for _, l := range x.freeLinks {
		w.uv(uint64(l))
	}
}

// DecodeState returns the terminal whose state AppendState wrote to data.
// It copies what it keeps: data may be reused after. A state that is not
// one (truncated, an unknown version, values out of range) gets an error
// and no terminal.
func DecodeState(data []byte) (*Terminal, error) {
	r := stateReader{b: data}
	if v := r.uv(); r.err == nil && v != stateVersion {
		return nil, xerrors.Errorf("vt state version %d: this release reads %d", v, stateVersion)
	}
	t := &Terminal{}
	t.rows, t.cols, t.scrollbackMax = r.size(maxRows), r.size(maxCols), r.size(1<<30)
	if r.err == nil && (t.rows < 1 || t.cols < 2) {
		r.fail("size %dx%d", t.rows, t.cols)
	}
	m := &t.modes
	r.bools(&m.appCursor, &m.appKeypad, &m.bracketedPaste, &m.insert, &m.origin, &m.wraparound,
		&m.reverseWrap, &m.sendFocus, &m.convertEOL, &m.cursorHidden, &m.syncOutput, &m.optBlink,
		&m.blinkSet, &m.cursorBlink, &t.altActive, &t.answer)
	m.mouse = mouseProtocol(r.byteMax(byte(mouseAny)))
	m.mouseEnc = mouseEncoding(r.byteMax(byte(mouseEncSGRPixels)))
	m.cursorStyle = cursorStyle(r.byteMax(byte(cursorBar)))
	for i := range t.charsets {
		t.charsets[i] = r.charset()
	}
	t.gl = int(r.byteMax(3))
	t.setActive(r.charset())
	t.title = r.str()
	t.joinWidth = r.size(2)

	p := &t.pen
	p.fg, p.bg = color(r.u32()), color(r.u32())
	p.flags = uint16(r.uvMax(0xffff))
	r.bools(&p.hasExt)
	p.ulStyle = r.byte()
	p.link = uint32(r.uvMax(maxLinks))
	p.ulColor = color(r.u32())
	t.penAttrs = r.attrs()

	t.state = pstate(r.byteMax(byte(numStates - 1)))
	t.fastFinal = r.byte()
	t.oscMode = r.byteMax(oscAbort)
	t.collect = r.u32()
	pr := &t.params
	pr.n = r.size(maxParams)
	for i := range pr.n {
		pr.vals[i] = int32(r.u32())
		pr.subStart[i], pr.subEnd[i] = r.byteMax(maxSubParams), r.byteMax(maxSubParams)
		if pr.subStart[i] > pr.subEnd[i] {
			r.fail("sub-parameters %d..%d", pr.subStart[i], pr.subEnd[i])
		}
	}
	pr.subN = r.size(maxSubParams)
	for i := range pr.subN {
		pr.sub[i] = int32(r.u32())
	}
	r.bools(&pr.rejectDig, &pr.rejectSub, &pr.digitSub)
	osc := r.bytes(maxOSC)
	t.osc = append(make([]byte, 0, max(64, len(osc))), osc...)
	t.oscID = int32(r.u32())
	t.utf8Len = copy(t.utf8[:], r.bytes(len(t.utf8)-1))
	t.replies = append([]byte(nil), r.bytes(maxReplies)...)

	r.ext(&t.ext)
	r.buffer(&t.normal, t.rows, t.cols, true)
	// The alternate screen is blanked when it is entered: while the
	// normal one is shown, it may keep the size it had.
	r.buffer(&t.alt, t.rows, t.cols, t.altActive)
	if r.err == nil && len(t.normal.lines) != t.rows {
		r.fail("normal screen of %d lines, %d rows", len(t.normal.lines), t.rows)
	}
	if r.err == nil && t.altActive && len(t.alt.lines) != t.rows {
		r.fail("alternate screen of %d lines, %d rows", len(t.alt.lines), t.rows)
	}
	t.buf = &t.normal
	if t.altActive {
		t.buf = &t.alt
	}
	r.scrollback(&t.sb, t.scrollbackMax)
	if r.err == nil {
		r.checkSlots(t)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the end", len(r.b))
	}
	if r.err != nil {
		return nil, xerrors.Errorf("decode vt state: %w", r.err)
	}
	return t, nil
}

// checkSlots makes sure every slot and link a cell, the pen or a slot
// refers to exists, so that no later lookup of one can fail.
func (r *stateReader) checkSlots(t *Terminal) {
	x := &t.ext
	link := func(l uint32) {
		if int(l) > len(x.links) {
			r.fail("link %d of %d", l, len(x.links))
		}
	}
	slot := func(s uint16) {
		if int(s) > len(x.slots) {
			r.fail("slot %d of %d", s, len(x.slots))
		}
	}
	link(t.pen.link)
	slot(t.penAttrs.slot())
	// A saved cursor's colours carry its pen's slot too (DECRC restores it).
	for _, b := range []*buffer{&t.normal, &t.alt} {
		slot(attrs{fg: b.saved.fg, bg: b.saved.bg}.slot())
	}
	for _, d := range x.slots {
		link(d.link)
	}
	// Those the tables name are never 0 (none).
	for _, s := range append(slices.Collect(maps.Values(x.bySlot)), x.free...) {
		if s == 0 {
			r.fail("slot 0 in the tables")
		}
		slot(s)
	}
	for _, l := range append(slices.Collect(maps.Values(x.byID)), x.freeLinks...) {
		if l == 0 {
			r.fail("link 0 in the tables")
		}
		link(l)
	}
	if s := r.maxSlot; int(s) > len(x.slots) {
		r.fail("a cell refers to slot %d of %d", s, len(x.slots))
	}
}

// stateWriter appends a state's fields.
type stateWriter struct {
	b       []byte
	scratch []byte
	// dict numbers the run attributes written so far (see line).
	dict map[[attrLen]byte]int
	// last is the attributes of the last run written, lastIdx their
	// index.
	last    [attrLen]byte
	lastIdx int
	lastSet bool
}

func (w *stateWriter) uv(v uint64)  { w.b = binary.AppendUvarint(w.b, v) }
func (w *stateWriter) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *stateWriter) str(s string) { w.uv(uint64(len(s))); w.b = append(w.b, s...) }

// bools packs up to 64 flags in a uvarint.
func (w *stateWriter) bools(bs ...bool) {
	var v uint64
	for i, b := range bs {
		if b {
			v |= 1 << i
		}
	}
	w.uv(v)
}

func (w *stateWriter) attrs(a attrs) {
	w.u32(uint32(a.fg))
	w.u32(uint32(a.bg))
	w.uv(uint64(a.flags))
	w.b = append(w.b, a.ul)
}

func (w *stateWriter) cursor(c savedCursor) {
	w.uv(uint64(c.x))
	w.uv(uint64(c.y))
	w.u32(uint32(c.fg))
	w.u32(uint32(c.bg))
	w.uv(uint64(c.flags))
	w.bools(c.hasExt)
	w.b = append(w.b, byte(c.charset))
}

// buffer writes a screen: cursor, region, tab stops, saved cursor, and
// its lines in the scrollback's encoding.
func (w *stateWriter) buffer(b *buffer) {
	w.uv(uint64(b.x))
	w.uv(uint64(b.y))
	w.uv(uint64(b.scrollTop))
	w.uv(uint64(b.scrollBottom))
	w.uv(uint64(len(b.tabs)))
	for i := 0; i < len(b.tabs); i += 8 {
		var bits byte
		for j := i; j < min(i+8, len(b.tabs)); j++ {
			if b.tabs[j] {
				bits |= 1 << (j - i)
			}
		}
		w.b = append(w.b, bits)
	}
	w.cursor(b.saved)
	w.uv(uint64(len(b.lines)))
	for _, l := range b.lines {
		if l == nil {
			w.b = append(w.b, 0)
			continue
		}
		w.b = append(w.b, 1)
		w.scratch = encodeLine(w.scratch[:0], l)
		w.line(w.scratch, l.wrapped)
	}
}

// line writes a line in the scrollback's encoding (encodeLine's) more
// compactly: each run's attributes, 13 bytes there, are an index into the
// attributes met so far (most lines have one or two runs, of a handful of
// attributes). The cells are copied as they are.
func (w *stateWriter) line(data []byte, wrapped bool) {
	cols, n := binary.Uvarint(data)
	data = data[n:]
	v := cols << 1
	if wrapped {
		v |= 1
	}
	w.uv(v)
	for len(data) > 0 {
		key := [attrLen]byte(data)
		run := binary.LittleEndian.Uint16(data[attrLen:])
		data = data[attrLen+2:]
		if w.lastSet && key == w.last {
			// Most runs have the attributes of the one before.
			w.uv(uint64(w.lastIdx) + runKnown)
		} else if i, ok := w.dict[key]; ok {
			w.uv(uint64(i) + runKnown)
			w.last, w.lastIdx = key, i
		} else {
			if w.dict == nil {
				w.dict = make(map[[attrLen]byte]int)
			}
			w.last, w.lastIdx, w.lastSet = key, len(w.dict), true
			w.dict[key] = len(w.dict)
			w.b = append(w.b, runNew)
			w.b = append(w.b, key[:]...)
		}
		w.uv(uint64(run))
		end, _ := cellsLen(data, int(run))
		w.b = append(w.b, data[:end]...)
		data = data[end:]
	}
	w.b = append(w.b, runsEnd)
}

// A run of a line in a state starts with one of these, or runKnown plus
// the index of attributes met before.
const (
	runsEnd  = 0 // the line ends
	runNew   = 1 // attributes not met before follow
	runKnown = 2
)

// stateReader reads a state's fields; the first error sticks, and every
// read after it gives zero values.
type stateReader struct {
	b   []byte
	err error
	// maxSlot is the highest slot a cell of a decoded line refers to.
	maxSlot uint16
	// dict is the run attributes read so far (see stateWriter.line).
	dict    [][]byte
	scratch []byte
}

// line reads a line written by stateWriter.line, appending it to dst in
// the scrollback's encoding, checked so that decodeLine can trust it.
func (r *stateReader) line(dst []byte) (out []byte, cols int, wrapped bool) {
	v := r.uvMax(maxCols<<1 | 1)
	cols, wrapped = int(v>>1), v&1 != 0
	dst = binary.AppendUvarint(dst, uint64(cols))
	cells := 0
	for r.err == nil {
		var key []byte
		switch code := r.uv(); {
		case code == runsEnd:
			return dst, cols, wrapped
		case code == runNew:
			key = r.take(attrLen)
			r.dict = append(r.dict, key)
		case code-runKnown < uint64(len(r.dict)):
			key = r.dict[code-runKnown]
		default:
			r.fail("run attributes %d of %d", code-runKnown, len(r.dict))
		}
		run := r.size(0xffff)
		if cells += run; cells > cols {
			r.fail("%d cells in a line of %d", cells, cols)
		}
		if r.err != nil {
			break
		}
		r.maxSlot = max(r.maxSlot, attrs{fg: color(binary.LittleEndian.Uint32(key)), bg: color(binary.LittleEndian.Uint32(key[4:]))}.slot())
		end, err := cellsLen(r.b, run)
		if err != nil {
			r.fail("%w", err)
			break
		}
		dst = append(dst, key...)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(run))
		dst = append(dst, r.take(end)...)
	}
	return dst, 0, false
}

func (r *stateReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = xerrors.Errorf(format, args...)
	}
}

func (r *stateReader) uv() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) uvMax(limit uint64) uint64 {
	v := r.uv()
	if v > limit {
		r.fail("value %d over %d", v, limit)
		return 0
	}
	return v
}

func (r *stateReader) size(limit int) int { return int(r.uvMax(uint64(limit))) }

func (r *stateReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail("truncated: %d bytes wanted, %d left", n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *stateReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *stateReader) byte() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *stateReader) byteMax(limit byte) byte {
	v := r.byte()
	if v > limit {
		r.fail("value %d over %d", v, limit)
		return 0
	}
	return v
}

func (r *stateReader) charset() charset {
	cs := charset(r.byte())
	if cs != 0 && charsetTable(cs) == nil {
		r.fail("charset %q", byte(cs))
		return 0
	}
	return cs
}

// bytes returns a field of up to limit bytes, not copied.
func (r *stateReader) bytes(limit int) []byte { return r.take(r.size(limit)) }

func (r *stateReader) str() string { return string(r.bytes(1 << 30)) }

func (r *stateReader) bools(bs ...*bool) {
	v := r.uv()
	for i, b := range bs {
		*b = v&(1<<i) != 0
	}
	if v>>len(bs) != 0 {
		r.fail("flags %#x", v)
	}
}

func (r *stateReader) attrs() attrs {
	return attrs{fg: color(r.u32()), bg: color(r.u32()), flags: uint16(r.uvMax(0xffff)), ul: r.byte()}
}

func (r *stateReader) cursor() savedCursor {
	var c savedCursor
	c.x, c.y = r.size(maxCols), r.size(1<<31)
	c.fg, c.bg = color(r.u32()), color(r.u32())
	c.flags = uint16(r.uvMax(0xffff))
	r.bools(&c.hasExt)
	c.charset = r.charset()
	return c
}

// buffer reads a screen; strict, its cursor and region must be in its
// rows and columns.
func (r *stateReader) buffer(b *buffer, rows, cols int, strict bool) {
	lastRow, lastCol := rows-1, cols
	if !strict {
		lastRow, lastCol = maxRows-1, maxCols
	}
	b.x, b.y = r.size(lastCol), r.size(lastRow)
	b.scrollTop, b.scrollBottom = r.size(lastRow), r.size(lastRow)
	if r.err == nil && b.scrollTop > b.scrollBottom {
		r.fail("scroll region %d..%d", b.scrollTop, b.scrollBottom)
	}
	ntabs := r.size(maxCols + 1)
	bits := r.take((ntabs + 7) / 8)
	if r.err != nil {
		return
	}
	b.tabs = make([]bool, ntabs)
	for i := range b.tabs {
		b.tabs[i] = bits[i/8]&(1<<(i%8)) != 0
	}
	b.saved = r.cursor()
	n := r.size(maxRows)
	if r.err != nil {
		return
	}
	b.lines = make([]*line, n)
	cells := make([]cell, 0)
	for i := range b.lines {
		if r.byteMax(1) == 0 {
			if strict {
				r.fail("screen line %d missing", i)
			}
			continue
		}
		var lcols int
		var wrapped bool
		r.scratch, lcols, wrapped = r.line(r.scratch[:0])
		if r.err == nil && strict && lcols < cols {
			// (A line of the screen shown may be wider than it, after a
			// resize, never narrower.)
			r.fail("screen line %d of %d columns, %d wanted", i, lcols, cols)
		}
		if r.err != nil {
			return
		}
		// One array for a screen's cells, when its lines are as wide.
		if len(cells) < lcols {
			cells = make([]cell, max(cols, lcols)*(n-i))
		}
		l := &line{cells: cells[:lcols:lcols], wrapped: wrapped}
		cells = cells[lcols:]
		decodeLine(l, r.scratch)
		b.lines[i] = l
	}
}

// scrollback copies the stored lines into one array, each line's slice
// its own (capped, so that a slot reused for a longer line moves out).
func (r *stateReader) scrollback(s *scrollback, max int) {
	s.reset(max)
	n := r.size(max)
	if r.err != nil || n == 0 {
		return
	}
	// One array for every line, each line's slice its own (capped, so
	// that a slot reused for a longer line moves out).
	// (The scrollback is the state's last field: what is left is its
	// lines, each run 12 bytes longer once decoded.)
	all := make([]byte, 0, len(r.b)+16*n)
	ends := make([]int, n)
	s.lines = make([]sbLine, n)
	for i := range n {
		all, _, s.lines[i].wrapped = r.line(all)
		if r.err != nil {
			return
		}
		ends[i] = len(all)
	}
	at := 0
	for i, end := range ends {
		s.lines[i].data = all[at:end:end]
		at = end
	}
	s.n = n
}

func (r *stateReader) ext(x *extTable) {
	slots := r.size(maxSlots)
	for range slots {
		if r.err != nil {
			return
		}
		x.slots = append(x.slots, extData{link: uint32(r.uvMax(maxLinks)), ul: color(r.u32())})
	}
	if n := r.size(maxSlots); n > 0 {
		x.bySlot = make(map[extData]uint16, n)
		for range n {
			d := extData{link: uint32(r.uvMax(maxLinks)), ul: color(r.u32())}
			x.bySlot[d] = uint16(r.uvMax(maxSlots))
		}
	}
	for range r.size(maxSlots) {
		x.free = append(x.free, uint16(r.uvMax(maxSlots)))
	}
	for range r.size(maxLinks) {
		if r.err != nil {
			return
		}
		x.links = append(x.links, linkData{uri: r.str(), id: r.str()})
	}
	if n := r.size(maxLinks); n > 0 {
		x.byID = make(map[linkData]uint32, n)
		for range n {
			d := linkData{uri: r.str(), id: r.str()}
			x.byID[d] = uint32(r.uvMax(maxLinks))
		}
	}
	for range r.size(maxLinks) {
		x.freeLinks = append(x.freeLinks, uint32(r.uvMax(maxLinks)))
	}
}

// cellsLen returns the length of the first run cells of data, a line's
// cells in the scrollback's encoding (encodeLine), checking them.
func cellsLen(data []byte, run int) (int, error) {
	i := 0
	// Printable ASCII, most cells, stands for itself.
	for run > 0 && i < len(data) && data[i]-0x20 < 0x5f {
		i++
		run--
	}
	for ; run > 0; run-- {
		if i >= len(data) {
			return 0, xerrors.New("truncated cell")
		}
		b := data[i]
		i++
		switch b {
		case tagEmpty, tagCovered:
		case tagEmptyW, tagText:
			if i >= len(data) || data[i] > 2 {
				return 0, xerrors.New("bad cell width")
			}
			if b == tagEmptyW {
				i++
				break
			}
			if i+1 >= len(data) {
				return 0, xerrors.New("truncated cell")
			}
			sl, k := binary.Uvarint(data[i+1:])
			i += 1 + k
			if k <= 0 || sl == 0 || sl > uint64(len(data)-i) || !utf8.Valid(data[i:i+int(sl)]) {
				return 0, xerrors.New("bad text")
			}
			i += int(sl)
		default:
			if b < 0x20 || b > 0x7e {
				return 0, xerrors.Errorf("bad cell tag %#x", b)
			}
		}
	}
	if i > len(data) {
		return 0, xerrors.New("truncated cell")
	}
	return i, nil
}

// ScrollbackLines is the number of lines the terminal keeps above its
// normal screen (Options.Scrollback).
func (t *Terminal) ScrollbackLines() int { return t.scrollbackMax }
