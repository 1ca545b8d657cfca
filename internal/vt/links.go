package vt

import "strings"

// A cell's extended attributes, kept as xterm.js keeps them: an OSC 8 link
// (shared by the cells printed while it was open, identified by its target
// and id= parameter) and an SGR 58 underline colour. A cell holds them as
// a slot of a table, whose number it keeps in the bits of its colours
// above the colour itself (fg's top six bits the low half, bg's the high
// half), so the pen's attributes carry it into every printed cell at no
// cost to printing, and the scrollback stores it with the colours.

const (
	slotShift = 26
	// colorBits masks a colour without the slot bits.
	colorBits color = 1<<slotShift - 1
	// maxSlots is the number of slots the twelve bits can name (0 is none).
	maxSlots = 1<<12 - 1
	// maxLinks bounds the links kept apart from slots (opened but not yet
	// shown, or shown with several underline colours).
	maxLinks = 1 << 16
)

// slot returns the extended-attributes slot a carries, 0 for none.
func (a attrs) slot() uint16 { return uint16(a.fg>>slotShift) | uint16(a.bg>>slotShift)<<6 }

// withSlot returns a carrying slot s instead of its own.
func (a attrs) withSlot(s uint16) attrs {
	a.fg = a.fg&colorBits | color(s&63)<<slotShift
	a.bg = a.bg&colorBits | color(s>>6)<<slotShift
	return a
}

// linkData is what OSC 8 opened: the target and the id= parameter ("" for
// none).
type linkData struct{ uri, id string }

// extData is what a slot stands for: a link (0 none, else an index into
// extTable.links plus one) and an underline colour (colorDefault none).
type extData struct {
	link uint32
	ul   color
}

// extTable holds the slots cells refer to, and the links those and the
// pen refer to.
type extTable struct {
	slots  []extData // slots[s-1]
	bySlot map[extData]uint16
	free   []uint16
	links  []linkData // links[l-1]
	// byID finds a link with an id again: OSC 8 with the same id and
	// target continues it (xterm.js registerLink).
	byID      map[linkData]uint32
	freeLinks []uint32
}

func (x *extTable) get(s uint16) extData       { return x.slots[s-1] }
func (x *extTable) link(l uint32) linkData     { return x.links[l-1] }
func (x *extTable) slotLink(s uint16) linkData { return x.link(x.get(s).link) }

// slotFor returns the slot for d, taking a new one if none has it; 0 when
// every slot is in use.
func (t *Terminal) slotFor(d extData) uint16 {
	x := &t.ext
	if s, ok := x.bySlot[d]; ok {
		return s
	}
	if len(x.free) == 0 && len(x.slots) == maxSlots {
		t.collectExt()
	}
	var s uint16
	switch {
	case len(x.free) > 0:
		s = x.free[len(x.free)-1]
		x.free = x.free[:len(x.free)-1]
		x.slots[s-1] = d
	case len(x.slots) < maxSlots:
		x.slots = append(x.slots, d)
		s = uint16(len(x.slots))
	default:
		return 0
	}
	if x.bySlot == nil {
		x.bySlot = make(map[extData]uint16)
	}
	x.bySlot[d] = s
	return s
}

// registerLink returns the link an OSC 8 opening d refers to: the existing
// one for the same id and target, else a new one; 0 when too many are
// kept.
func (t *Terminal) registerLink(d linkData) uint32 {
	x := &t.ext
	if d.id != "" {
		if l, ok := x.byID[d]; ok {
			return l
		}
	}
	if len(x.freeLinks) == 0 && len(x.links) == maxLinks {
		t.collectExt()
	}
	var l uint32
	switch {
	case len(x.freeLinks) > 0:
		l = x.freeLinks[len(x.freeLinks)-1]
		x.freeLinks = x.freeLinks[:len(x.freeLinks)-1]
		x.links[l-1] = d
	case len(x.links) < maxLinks:
		x.links = append(x.links, d)
		l = uint32(len(x.links))
	default:
		return 0
	}
	if d.id != "" {
		if x.byID == nil {
			x.byID = make(map[linkData]uint32)
		}
		x.byID[d] = l
	}
	return l
}

// collectExt frees the slots no cell refers to any more, and the links no
// slot and no pen does. It runs when slots or links run out, so its cost
// (a pass over the scrollback) is spread over thousands of them.
func (t *Terminal) collectExt() {
	x := &t.ext
	used := make([]bool, len(x.slots)+1)
	mark := func(l *line) {
		for i := range l.cells[:l.used] {
			used[l.cells[i].attrs().slot()] = true
		}
	}
	for _, b := range []*buffer{&t.normal, &t.alt} {
		for _, l := range b.lines {
			mark(l)
		}
	}
	var tmp line
	for i := 0; i < t.sb.len(); i++ {
		t.sb.decode(i, &tmp)
		mark(&tmp)
	}
	used[t.penAttrs.slot()] = true
	linkUsed := make([]bool, len(x.links)+1)
	linkUsed[t.pen.link] = true
	x.free = x.free[:0]
	for s := len(x.slots); s >= 1; s-- {
		d := x.slots[s-1]
		if used[s] {
			linkUsed[d.link] = true
			continue
		}
		if x.bySlot[d] == uint16(s) {
			delete(x.bySlot, d)
		}
		x.slots[s-1] = extData{}
		x.free = append(x.free, uint16(s))
	}
	x.freeLinks = x.freeLinks[:0]
	for l := len(x.links); l >= 1; l-- {
		if linkUsed[l] {
			continue
		}
		if d := x.links[l-1]; d.id != "" && x.byID[d] == uint32(l) {
			delete(x.byID, d)
		}
		x.links[l-1] = linkData{}
		x.freeLinks = append(x.freeLinks, uint32(l))
	}
}

// penChanged recomputes the attributes printed cells get after the pen
// changed: its extended attributes (link, underline colour) go in a slot
// while xterm.js's extended-attributes flag is set.
func (t *Terminal) penChanged() {
	a := t.pen.attrs()
	if p := t.pen; p.hasExt && (p.link != 0 || p.ulColor != colorDefault) {
		a = a.withSlot(t.slotFor(extData{link: p.link, ul: p.ulColor}))
	}
	t.penAttrs = a
}

// hyperlink is OSC 8 "params;uri" as xterm.js reads it: a target opens a
// link (closing any open one), none closes it, unless the params are not
// blank, which xterm.js ignores.
func (t *Terminal) hyperlink(data []byte) {
	params, uri, ok := strings.Cut(string(data), ";")
	if !ok {
		return
	}
	params = strings.TrimSpace(params)
	if uri == "" {
		if params != "" {
			return
		}
		t.pen.link = 0
	} else {
		d := linkData{uri: uri}
		for _, p := range strings.Split(params, ":") {
			if id, ok := strings.CutPrefix(p, "id="); ok {
				d.id = id
				break
			}
		}
		t.pen.link = 0
		t.pen.link = t.registerLink(d)
	}
	t.pen.updateExt()
	t.penChanged()
}
