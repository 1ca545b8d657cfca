package main

import (
	"strings"
	"testing"
)

// TestModeTrackerFollowsTheAlternateScreen feeds output split at every
// byte: the exit sequence leaves the alternate screen only when the output
// left the terminal on it.
func TestModeTrackerFollowsTheAlternateScreen(t *testing.T) {
	for _, tc := range []struct {
		output string
		alt    bool
	}{
		{"plain shell output\r\n", false},
		{"\x1b[?1049h\x1b[Hvim", true},
		{"\x1b[?1049hvim\x1b[?1049l$ ", false},
		{"\x1b[?47hold", true},
		{"\x1b[?1047hx\x1b[?1047l", false},
		{"\x1b[?1049l\x1b[?1049h", true},
	} {
		for cut := 0; cut <= len(tc.output); cut++ {
			for cut2 := cut; cut2 <= len(tc.output); cut2++ {
				var m modeTracker
				m.scan([]byte(tc.output[:cut]))
				m.scan([]byte(tc.output[cut:cut2]))
				m.scan([]byte(tc.output[cut2:]))
				if m.altScreen != tc.alt {
					t.Fatalf("%q cut at %d and %d: alternate screen %v, want %v", tc.output, cut, cut2, m.altScreen, tc.alt)
				}
				seq := m.resetSequence()
				if strings.Contains(seq, leaveAltScreen) != tc.alt || !strings.HasSuffix(seq, resetModes) {
					t.Fatalf("%q: exit sequence %q", tc.output, seq)
				}
			}
		}
	}
}
