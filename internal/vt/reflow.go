package vt

// reflow rewraps the normal buffer's soft-wrapped lines from oldCols to
// newCols, as xterm.js does. TODO: not yet; lines are cut to the new width.
func (t *Terminal) reflow(oldCols, newCols int) {
	if newCols < oldCols {
		for _, l := range t.normal.lines {
			l.resize(newCols, attrs{})
		}
	}
}
