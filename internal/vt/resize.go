package vt

// Resize changes the terminal's size, in order with the output written
// before and after it, the way xterm.js resizes its buffers: rows come from
// or go to the scrollback around the cursor, and the normal screen's soft-
// wrapped lines are reflowed to the new width (see reflow.go).
func (t *Terminal) Resize(rows, cols int) {
	rows, cols = clampSize(rows, cols)
	if rows == t.rows && cols == t.cols {
		return
	}
	oldCols := t.cols
	// The buffers' lines may be replaced: their old backing arrays must
	// not keep dropped lines alive.
	t.normal.base, t.alt.base = nil, nil
	t.resizeBuffer(&t.normal, true, rows, cols)
	if t.altActive {
		t.resizeBuffer(&t.alt, false, rows, cols)
	} else {
		t.alt.scrollBottom = rows - 1
	}
	t.rows, t.cols = rows, cols
	if cols != oldCols {
		t.reflow(oldCols, cols)
	}
	t.setupTabs(&t.normal, cols)
	t.setupTabs(&t.alt, cols)
}

// resizeBuffer is xterm.js Buffer.resize before the reflow.
func (t *Terminal) resizeBuffer(b *buffer, normal bool, rows, cols int) {
	ybase := 0
	maxSB := 0
	if normal {
		ybase = t.sb.len()
		maxSB = t.scrollbackMax
	}
	if cols > t.cols {
		for _, l := range b.lines {
			l.resize(cols, attrs{})
		}
	}
	addToY := 0
	if t.rows < rows {
		for y := t.rows; y < rows; y++ {
			if len(b.lines) >= rows {
				continue
			}
			if ybase > 0 && len(b.lines) <= b.y+addToY+1 {
				// Pull the newest scrollback line down onto the screen.
				l := &line{}
				t.sb.popNewest(l)
				l.resize(max(cols, len(l.cells)), attrs{})
				b.lines = append([]*line{l}, b.lines...)
				ybase--
				addToY++
			} else {
				b.lines = append(b.lines, newLine(cols, attrs{}))
			}
		}
	} else {
		for y := t.rows; y > rows; y-- {
			if len(b.lines) <= rows {
				continue
			}
			if len(b.lines) > b.y+1 {
				b.lines = b.lines[:len(b.lines)-1]
			} else {
				// The top line leaves the screen for the scrollback (the
				// alternate screen has none: it is dropped).
				if normal {
					t.sb.pushUnbounded(b.lines[0])
				}
				b.lines = b.lines[1:]
				b.y--
				if normal {
					ybase++
				} else {
					b.saved.y = max(b.saved.y-1, 0)
				}
			}
		}
	}
	if normal && t.sb.len() > maxSB {
		trim := t.sb.len() - maxSB
		t.sb.trimOldest(trim)
		b.saved.y = max(b.saved.y-trim, 0)
	}
	if normal {
		t.sb.setMax(maxSB)
	}
	b.x = min(b.x, cols-1)
	b.y = min(b.y, rows-1)
	b.y += addToY
	b.saved.x = min(b.saved.x, cols-1)
	b.scrollTop = 0
	b.scrollBottom = rows - 1
}
