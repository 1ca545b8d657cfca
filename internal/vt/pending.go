package vt

import "strconv"

// appendPending appends bytes that put a receiver's parser into the state
// this one is in, mid-sequence, so that the rest of a sequence split by a
// read arrives as it would have here. It is rebuilt from the parser state
// (not replayed), so controls executed inside the sequence run only once.
func (t *Terminal) appendPending(dst []byte) []byte {
	collect := func(dst []byte) []byte {
		for sh := 24; sh >= 0; sh -= 8 {
			if c := byte(t.collect >> sh); c != 0 {
				dst = append(dst, c)
			}
		}
		return dst
	}
	csiParams := func(dst []byte) []byte {
		p := &t.params
		for i := 0; i < p.n; i++ {
			if i > 0 {
				dst = append(dst, ';')
			}
			dst = strconv.AppendInt(dst, int64(p.vals[i]), 10)
			for _, sv := range p.subs(i) {
				dst = append(dst, ':')
				if sv >= 0 {
					dst = strconv.AppendInt(dst, int64(sv), 10)
				}
			}
		}
		if p.rejectDig {
			dst = append(dst, ';')
		}
		return dst
	}
	switch t.state {
	case stEscape:
		dst = append(dst, 0x1b)
	case stEscInter:
		dst = collect(append(dst, 0x1b))
	case stCSIEntry:
		dst = append(dst, "\x1b["...)
	case stCSIParam:
		// The private marker, if any, was collected first.
		dst = csiParams(collect(append(dst, "\x1b["...)))
	case stCSIInter:
		dst = append(dst, "\x1b["...)
		var inter []byte
		for sh := 24; sh >= 0; sh -= 8 {
			switch c := byte(t.collect >> sh); {
			case c == 0:
			case c >= 0x3c && c <= 0x3f:
				dst = append(dst, c) // the private marker comes first
			default:
				inter = append(inter, c)
			}
		}
		dst = append(csiParams(dst), inter...)
	case stCSIIgnore:
		dst = append(dst, "\x1b[0<"...)
	case stSosPmApc:
		dst = append(dst, "\x1b_"...)
	case stOSC:
		dst = append(dst, "\x1b]"...)
		switch t.oscMode {
		case oscIdent:
			if t.oscID >= 0 {
				dst = strconv.AppendInt(dst, int64(t.oscID), 10)
			}
		case oscPayload:
			if t.oscID >= 0 {
				dst = strconv.AppendInt(dst, int64(t.oscID), 10)
			}
			dst = append(dst, ';')
			dst = append(dst, t.osc...)
		case oscAbort:
			dst = append(dst, 'x')
		}
	case stDCSEntry:
		dst = append(dst, "\x1bP"...)
	case stDCSParam:
		dst = append(dst, "\x1bP0"...)
	case stDCSInter:
		dst = append(dst, "\x1bP "...)
	case stDCSIgnore:
		dst = append(dst, "\x1bP0<"...)
	case stDCSPass:
		dst = append(dst, "\x1bPq"...)
	}
	return dst
}
