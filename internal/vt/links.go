package vt

import "strings"

// OSC 8 hyperlinks, kept as xterm.js keeps them: a link per cell, shared by
// the cells printed while it was open, and identified by its target and id=
// parameter. A cell holds its link as a slot number in the bits of its
// colours above the colour itself (fg's top six bits the low half, bg's the
// high half), so the pen's attributes carry it into every printed cell at
// no cost to printing, and the scrollback stores it with the colours.

const (
	linkShift = 26
	// colorBits masks a colour without the link bits.
	colorBits color = 1<<linkShift - 1
	// maxLinks is the number of slots the twelve bits can name (0 is none).
	maxLinks = 1<<12 - 1
)

// link returns the link slot a carries, 0 for none.
func (a attrs) link() uint16 { return uint16(a.fg>>linkShift) | uint16(a.bg>>linkShift)<<6 }

// withLink returns a carrying link slot l instead of its own.
func (a attrs) withLink(l uint16) attrs {
	a.fg = a.fg&colorBits | color(l&63)<<linkShift
	a.bg = a.bg&colorBits | color(l>>6)<<linkShift
	return a
}

// linkData is what OSC 8 opened: the target and the id= parameter ("" for
// none).
type linkData struct{ uri, id string }

// linkTable holds the links that cells and the pen refer to by slot.
type linkTable struct {
	data []linkData // data[slot-1]
	// byID finds a link with an id again: OSC 8 with the same id and
	// target continues it (xterm.js registerLink).
	byID map[linkData]uint16
	free []uint16
}

func (lt *linkTable) get(slot uint16) linkData { return lt.data[slot-1] }

// register returns the slot for an OSC 8 opening d: the existing link for
// the same id and target, else a new one; 0 when every slot is in use.
func (t *Terminal) registerLink(d linkData) uint16 {
	lt := &t.links
	if d.id != "" {
		if s, ok := lt.byID[d]; ok {
			return s
		}
	}
	if len(lt.free) == 0 && len(lt.data) == maxLinks {
		t.collectLinks()
	}
	var s uint16
	switch {
	case len(lt.free) > 0:
		s = lt.free[len(lt.free)-1]
		lt.free = lt.free[:len(lt.free)-1]
		lt.data[s-1] = d
	case len(lt.data) < maxLinks:
		lt.data = append(lt.data, d)
		s = uint16(len(lt.data))
	default:
		return 0
	}
	if d.id != "" {
		if lt.byID == nil {
			lt.byID = make(map[linkData]uint16)
		}
		lt.byID[d] = s
	}
	return s
}

// collectLinks frees the slots no cell and no pen refers to any more. It
// runs when the slots run out, so its cost (a pass over the scrollback)
// is spread over thousands of links.
func (t *Terminal) collectLinks() {
	lt := &t.links
	used := make([]bool, len(lt.data)+1)
	mark := func(l *line) {
		for i := range l.cells[:l.used] {
			used[l.cells[i].attrs().link()] = true
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
	used[t.pen.link] = true
	lt.free = lt.free[:0]
	for s := len(lt.data); s >= 1; s-- {
		if used[s] {
			continue
		}
		if d := lt.data[s-1]; d.id != "" && lt.byID[d] == uint16(s) {
			delete(lt.byID, d)
		}
		lt.data[s-1] = linkData{}
		lt.free = append(lt.free, uint16(s))
	}
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
	t.penAttrs = t.pen.attrs()
}
