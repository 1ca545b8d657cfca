package vt

// Reflow follows xterm.js (Buffer._reflowLarger/_reflowSmaller and
// BufferReflow.ts) step by step, so a resized normal screen and its
// scrollback match the web client's: soft-wrapped lines are re-joined when
// the screen widens and re-split when it narrows, except the lines holding
// the cursor (xterm.js's reflowCursorLine option is off by default). The
// alternate screen is not reflowed.

// reflowState is the normal buffer as one list, as xterm.js keeps it:
// ybase lines of scrollback, then the screen.
type reflowState struct {
	lines        []*line
	ybase, y     int
	savedY       int
	rows, maxLen int
}

// reflow rewraps the normal buffer from oldCols to newCols; t.rows and
// t.cols are already the new size.
func (t *Terminal) reflow(oldCols, newCols int) {
	b := &t.normal
	n := t.sb.len()
	st := reflowState{ybase: n, y: b.y, savedY: b.saved.y, rows: t.rows, maxLen: t.rows + t.scrollbackMax}
	st.lines = make([]*line, 0, n+len(b.lines))
	// Every line has the width the buffer had (wider ones were already
	// widened to newCols).
	width := oldCols
	if newCols > oldCols {
		width = newCols
	}
	for i := 0; i < n; i++ {
		l := &line{}
		t.sb.decode(i, l)
		l.resize(width, attrs{})
		st.lines = append(st.lines, l)
	}
	for _, l := range b.lines {
		l.resize(width, attrs{})
	}
	st.lines = append(st.lines, b.lines...)
	if newCols > oldCols {
		st.larger(oldCols, newCols)
	} else {
		st.smaller(oldCols, newCols)
		for _, l := range st.lines {
			l.resize(newCols, attrs{})
		}
	}
	// Back to scrollback and screen; the scrollback is stored again at the
	// new width.
	t.sb.reset(t.scrollbackMax)
	for _, l := range st.lines[:st.ybase] {
		t.sb.pushEncoded(l)
	}
	b.lines = append([]*line(nil), st.lines[st.ybase:]...)
	for len(b.lines) < t.rows {
		b.lines = append(b.lines, newLine(newCols, attrs{}))
	}
	b.lines = b.lines[:t.rows]
	b.y = min(st.y, t.rows-1)
	b.saved.y = st.savedY
}

func (st *reflowState) larger(oldCols, newCols int) {
	lines := st.lines
	var toRemove []int
	cursorAbs := st.ybase + st.y
	for y := 0; y < len(lines)-1; y++ {
		i := y + 1
		if !lines[i].wrapped {
			continue
		}
		wrapped := []*line{lines[y]}
		for i < len(lines) && lines[i].wrapped {
			wrapped = append(wrapped, lines[i])
			i++
		}
		if cursorAbs >= y && cursorAbs < i {
			y += len(wrapped) - 1
			continue
		}
		destLine := 0
		destCol := wrappedTrimmedLength(wrapped, destLine, oldCols)
		srcLine, srcCol := 1, 0
		for srcLine < len(wrapped) {
			srcLen := wrappedTrimmedLength(wrapped, srcLine, oldCols)
			n := min(srcLen-srcCol, newCols-destCol)
			wrapped[destLine].copyCellsFrom(wrapped[srcLine], srcCol, destCol, n, false)
			destCol += n
			if destCol == newCols {
				destLine++
				destCol = 0
			}
			srcCol += n
			if srcCol == srcLen {
				srcLine++
				srcCol = 0
			}
			if destCol == 0 && destLine != 0 && wrapped[destLine-1].cells[newCols-1].width() == 2 {
				wrapped[destLine].copyCellsFrom(wrapped[destLine-1], newCols-1, destCol, 1, false)
				destCol++
				wrapped[destLine-1].set(newCols-1, 0, attrs{}, 0)
			}
		}
		wrapped[destLine].replaceCells(destCol, newCols, attrs{})
		remove := 0
		for k := len(wrapped) - 1; k > 0; k-- {
			if k > destLine || wrapped[k].trimmedLength() == 0 {
				remove++
			} else {
				break
			}
		}
		if remove > 0 {
			toRemove = append(toRemove, y+len(wrapped)-remove, remove)
		}
		y += len(wrapped) - 1
	}
	if len(toRemove) == 0 {
		return
	}
	kept := lines[:0:0]
	removed := 0
	for i, next := 0, 0; i < len(lines); i++ {
		if next < len(toRemove) && toRemove[next] == i {
			i += toRemove[next+1] - 1
			removed += toRemove[next+1]
			next += 2
			continue
		}
		kept = append(kept, lines[i])
	}
	st.lines = kept
	for k := 0; k < removed; k++ {
		if st.ybase == 0 {
			if st.y > 0 {
				st.y--
			}
			if len(st.lines) < st.rows {
				st.lines = append(st.lines, newLine(newCols, attrs{}))
			}
		} else {
			st.ybase--
		}
	}
	st.savedY = max(st.savedY-removed, 0)
}

type insertion struct {
	start int
	lines []*line
}

func (st *reflowState) smaller(oldCols, newCols int) {
	var toInsert []insertion
	countToInsert := 0
	for y := len(st.lines) - 1; y >= 0; y-- {
		if y >= len(st.lines) {
			continue // popped below by an earlier group's adjustment
		}
		next := st.lines[y]
		if !next.wrapped && next.trimmedLength() <= newCols {
			continue
		}
		wrapped := []*line{next}
		for next.wrapped && y > 0 {
			y--
			next = st.lines[y]
			wrapped = append([]*line{next}, wrapped...)
		}
		if abs := st.ybase + st.y; abs >= y && abs < y+len(wrapped) {
			continue
		}
		lastLen := wrapped[len(wrapped)-1].trimmedLength()
		destLens := newLineLengths(wrapped, oldCols, newCols)
		add := len(destLens) - len(wrapped)
		var trimmed int
		if st.ybase == 0 && st.y != len(st.lines)-1 {
			trimmed = max(0, st.y-st.maxLen+add)
		} else {
			trimmed = max(0, len(st.lines)-st.maxLen+add)
		}
		var fresh []*line
		for k := 0; k < add; k++ {
			l := newLine(newCols, attrs{})
			l.wrapped = true
			fresh = append(fresh, l)
		}
		if len(fresh) > 0 {
			toInsert = append(toInsert, insertion{start: y + len(wrapped) + countToInsert, lines: fresh})
			countToInsert += len(fresh)
		}
		wrapped = append(wrapped, fresh...)
		destLine := len(destLens) - 1
		destCol := destLens[destLine]
		if destCol == 0 {
			destLine--
			destCol = destLens[destLine]
		}
		srcLine := len(wrapped) - add - 1
		srcCol := lastLen
		for srcLine >= 0 && destLine >= 0 {
			n := min(srcCol, destCol)
			if srcLine < len(wrapped) {
				wrapped[destLine].copyCellsFrom(wrapped[srcLine], srcCol-n, destCol-n, n, true)
			}
			destCol -= n
			if destCol == 0 {
				destLine--
				if destLine < 0 {
					break
				}
				destCol = destLens[destLine]
			}
			srcCol -= n
			if srcCol == 0 {
				srcLine--
				srcCol = wrappedTrimmedLength(wrapped, max(srcLine, 0), oldCols)
			}
		}
		for k := range wrapped {
			if k < len(destLens) && destLens[k] < newCols {
				wrapped[k].set(destLens[k], 0, attrs{}, 0)
			}
		}
		for adj := add - trimmed; adj > 0; adj-- {
			if st.ybase == 0 {
				if st.y < st.rows-1 {
					st.y++
					st.lines = st.lines[:len(st.lines)-1]
				} else {
					st.ybase++
				}
			} else if st.ybase < min(st.maxLen, len(st.lines)+countToInsert)-st.rows {
				st.ybase++
			}
		}
		st.savedY = min(st.savedY+add, st.ybase+st.rows-1)
	}
	if len(toInsert) == 0 {
		return
	}
	orig := st.lines
	newLen := min(st.maxLen, len(orig)+countToInsert)
	out := make([]*line, newLen)
	oi := len(orig) - 1
	ti := 0
	inserted := 0
	for i := min(st.maxLen-1, len(orig)+countToInsert-1); i >= 0; i-- {
		if ti < len(toInsert) && toInsert[ti].start > oi+inserted {
			ins := toInsert[ti].lines
			for k := len(ins) - 1; k >= 0; k-- {
				if i >= 0 {
					out[i] = ins[k]
				}
				i--
			}
			i++
			inserted += len(ins)
			ti++
		} else if oi >= 0 {
			out[i] = orig[oi]
			oi--
		}
	}
	for i, l := range out {
		if l == nil {
			out[i] = newLine(newCols, attrs{})
		}
	}
	st.lines = out
}

// wrappedTrimmedLength is xterm.js getWrappedLineTrimmedLength.
func wrappedTrimmedLength(lines []*line, i, cols int) int {
	if i == len(lines)-1 {
		return lines[i].trimmedLength()
	}
	l := lines[i]
	endsInNull := !l.hasContent(cols-1) && l.cells[cols-1].width() == 1
	if endsInNull && lines[i+1].cells[0].width() == 2 {
		return cols - 1
	}
	return cols
}

// newLineLengths is xterm.js reflowSmallerGetNewLineLengths.
func newLineLengths(wrapped []*line, oldCols, newCols int) []int {
	var out []int
	needed := 0
	for i := range wrapped {
		needed += wrappedTrimmedLength(wrapped, i, oldCols)
	}
	srcCol, srcLine, avail := 0, 0, 0
	for avail < needed {
		if needed-avail < newCols {
			out = append(out, needed-avail)
			break
		}
		srcCol += newCols
		if old := wrappedTrimmedLength(wrapped, srcLine, oldCols); srcCol > old {
			srcCol -= old
			srcLine++
		}
		wide := srcCol >= 1 && srcLine < len(wrapped) && srcCol-1 < len(wrapped[srcLine].cells) &&
			wrapped[srcLine].cells[srcCol-1].width() == 2
		if wide {
			srcCol--
		}
		n := newCols
		if wide {
			n--
		}
		out = append(out, n)
		avail += n
	}
	return out
}
