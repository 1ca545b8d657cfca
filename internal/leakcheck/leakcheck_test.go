package leakcheck

import (
	"strings"
	"testing"
)

func TestFindReportsARunningGoroutine(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		blockedOnPurpose(stop)
	}()
	leaked := leakedStacks()
	close(stop)
	<-done
	found := false
	for _, s := range leaked {
		found = found || strings.Contains(s, "blockedOnPurpose")
	}
	if !found {
		t.Fatalf("a goroutine blocked in blockedOnPurpose was not reported; got %d stacks", len(leaked))
	}
	if err := Find(); err != nil {
		t.Fatalf("after the goroutine returned: %v", err)
	}
}

func blockedOnPurpose(stop <-chan struct{}) { <-stop }
