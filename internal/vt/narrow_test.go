package vt

import "testing"

// TestSnapshotAlternateScreenAfterNarrowing: the alternate screen keeps
// its lines at the old width after a resize narrows it; a line whose text
// ends before the new width must not break the snapshot.
func TestSnapshotAlternateScreenAfterNarrowing(t *testing.T) {
	term := New(24, 100, Options{Scrollback: 10})
	_, _ = term.Write([]byte("\x1b[?1049h\x1b[Hshort line\r\n" + "a line that is longer than sixty columns but ends before one hundred"))
	term.Resize(24, 60)
	snap := term.AppendSnapshot(nil)
	again := New(24, 60, Options{Scrollback: 10})
	_, _ = again.Write(snap)
	if got := again.AppendSnapshot(nil); string(got) != string(snap) {
		t.Fatalf("snapshot does not round-trip:\n%q\n%q", snap, got)
	}
}
