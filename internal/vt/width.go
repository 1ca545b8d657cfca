package vt

//go:generate go run gen_width.go ../xtermjs/testdata/node_modules/@xterm/addon-unicode11/src/UnicodeV11.ts

// runeWidth is the column width xterm.js gives a code point with the
// Unicode 11 provider active: 0 for controls and combining marks, 2 for
// East Asian wide and emoji presentation, 1 otherwise.
func runeWidth(r rune) int {
	if r < 0x10000 {
		if r < 0 {
			return 1
		}
		return int(bmpWidths[r>>2]>>(2*(r&3))) & 3
	}
	if inRanges(r, highZeroWidth) {
		return 0
	}
	if inRanges(r, highWide) {
		return 2
	}
	return 1
}

// inRanges reports whether r lies in one of the sorted, inclusive ranges.
func inRanges(r rune, ranges [][2]rune) bool {
	lo, hi := 0, len(ranges)-1
	if r < ranges[0][0] || r > ranges[hi][1] {
		return false
	}
	for lo <= hi {
		mid := (lo + hi) / 2
		switch {
		case r > ranges[mid][1]:
			lo = mid + 1
		case r < ranges[mid][0]:
			hi = mid - 1
		default:
			return true
		}
	}
	return false
}
