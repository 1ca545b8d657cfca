package leakcheck

import (
	"strings"
	"testing"
)

func TestFindReportsARunningGoroutine(t *testing.T) {
	stop := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		blockedOnPurpose(started, stop)
	}()
	<-started
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

func blockedOnPurpose(started chan<- struct{}, stop <-chan struct{}) {
	close(started)
	<-stop
}
