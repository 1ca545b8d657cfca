package vt

import "strconv"

// Setting the receiver's pen while a snapshot paints: colours and flags
// with SGR, the underline colour with SGR 58, the link with OSC 8.

// noCell is an attrs value no cell has (every flag set).
var noCell = attrs{flags: ^uint16(0)}

// throwawayLink stands for a link the snapshot opens only to set the
// extended-attributes flag that DECSC saves.
const throwawayLink = ^uint32(0)

// pen sets the receiving pen to print a cell with attributes a, its
// extended attributes included. It is called for every cell painted: the
// common case, a pen already right, is one comparison.
func (s *snapshotter) pen(a attrs) {
	if a != s.full {
		s.setPen(a)
	}
}

func (s *snapshotter) setPen(a attrs) {
	var d extData
	if sl := a.slot(); sl != 0 {
		d = s.t.ext.get(sl)
	}
	s.sgrUL(a, d.ul)
	if d.link != s.link {
		s.setLink(d.link)
	}
	s.full = a
}

// setLink makes the receiver's pen hold link l: OSC 8 opens it again
// (with its id, the same link) or closes the open one. Either way xterm.js
// then sets its extended-attributes flag as the model's pen has it after
// an SGR: while a link or an underline style is held.
func (s *snapshotter) setLink(l uint32) {
	if l == s.link {
		return
	}
	s.link = l
	s.full = noCell
	if l == 0 {
		s.out = append(s.out, "\x1b]8;;\x1b\\"...)
		return
	}
	d := s.t.ext.link(l)
	s.out = append(s.out, "\x1b]8;"...)
	if d.id != "" {
		s.out = append(s.out, "id="...)
		s.out = append(s.out, d.id...)
	} else {
		if s.opened[l] {
			s.lose("a link without an id painted in two parts")
		}
		if s.opened == nil {
			s.opened = make(map[uint32]bool)
		}
		s.opened[l] = true
	}
	s.out = append(s.out, ';')
	s.out = append(s.out, d.uri...)
	s.out = append(s.out, "\x1b\\"...)
}

// sgr sets the receiving pen's colours and flags to a's, with no underline
// colour, its link aside.
func (s *snapshotter) sgr(a attrs) { s.sgrUL(a, colorDefault) }

// sgrUL sets the receiving pen's colours and flags to a's and its
// underline colour to ul, its link aside (see pen).
func (s *snapshotter) sgrUL(a attrs, ul color) {
	a = a.withSlot(0)
	if a == s.cur && ul == s.ul {
		return
	}
	s.full = noCell
	if a.flags&attrProtected != s.cur.flags&attrProtected {
		if a.flags&attrProtected != 0 {
			s.out = append(s.out, "\x1b[1\"q"...)
		} else {
			s.out = append(s.out, "\x1b[0\"q"...)
		}
	}
	s.out = append(s.out, "\x1b[0"...)
	f := a.flags
	for _, fl := range [...]struct {
		bit  uint16
		code string
	}{{attrBold, ";1"}, {attrDim, ";2"}, {attrItalic, ";3"}, {attrBlink, ";5"}, {attrInverse, ";7"},
		{attrInvisible, ";8"}, {attrStrikethrough, ";9"}, {attrOverline, ";53"}} {
		if f&fl.bit != 0 {
			s.out = append(s.out, fl.code...)
		}
	}
	if f&attrUnderline != 0 && a.ul != 0 {
		s.out = append(s.out, ";4:"...)
		s.out = strconv.AppendInt(s.out, int64(a.ul), 10)
	}
	s.color(a.fg, 30, 90, 38)
	s.color(a.bg, 40, 100, 48)
	if ul&colorMode == colorP256 || ul&colorMode == colorRGB {
		// SGR 58 takes only these two (SGR 59 stores RGB white).
		s.color(ul, 0, 0, 58)
	}
	s.out = append(s.out, 'm')
	if a.flags&attrProtected != 0 {
		// SGR 0 cleared the protection again.
		s.out = append(s.out, "\x1b[1\"q"...)
	}
	s.cur, s.ul = a, ul
}

func (s *snapshotter) color(c color, base, bright, ext int) {
	switch c & colorMode {
	case colorP16:
		i := int(c & 0xff)
		s.out = append(s.out, ';')
		if i < 8 {
			s.out = strconv.AppendInt(s.out, int64(base+i), 10)
		} else {
			s.out = strconv.AppendInt(s.out, int64(bright+i-8), 10)
		}
	case colorP256:
		s.out = append(s.out, ';')
		s.out = strconv.AppendInt(s.out, int64(ext), 10)
		s.out = append(s.out, ";5;"...)
		s.out = strconv.AppendInt(s.out, int64(c&0xff), 10)
	case colorRGB:
		s.out = append(s.out, ';')
		s.out = strconv.AppendInt(s.out, int64(ext), 10)
		s.out = append(s.out, ";2;"...)
		s.out = strconv.AppendInt(s.out, int64(c>>16&0xff), 10)
		s.out = append(s.out, ';')
		s.out = strconv.AppendInt(s.out, int64(c>>8&0xff), 10)
		s.out = append(s.out, ';')
		s.out = strconv.AppendInt(s.out, int64(c&0xff), 10)
	}
}
