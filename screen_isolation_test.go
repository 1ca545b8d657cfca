package reconnectingpty

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestScreenSessionsDoNotSeeEachOther pins that a screen session's
// programs do not find the server's other screen daemons in their
// SCREENDIR, where screen -x would let them drive those sessions.
func TestScreenSessionsDoNotSeeEachOther(t *testing.T) {
	requireScreen(t)
	t.Parallel()
	ts := newTestServer(t, BackendScreen, Config{})
	other := uuid.New()
	b := ts.connect(Init{ID: other, Command: "echo other-up; exec sleep 1000"})
	b.expect("other-up")
	self := uuid.New()
	a := ts.connect(Init{ID: self, Command: "screen -ls; echo listed; exec sleep 1000"})
	out := a.expect("listed")
	if !strings.Contains(out, self.String()[:8]) {
		t.Fatalf("screen -ls does not show the session itself: %q", out)
	}
	if strings.Contains(out, other.String()[:8]) {
		t.Fatalf("a session's screen -ls shows another session: %q", out)
	}
}
