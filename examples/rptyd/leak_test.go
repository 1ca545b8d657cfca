package main

import (
	"testing"

	"github.com/reconnectingpty/reconnectingpty/internal/leakcheck"
)

// TestMain fails the package when a test leaves a goroutine behind: the
// bridge, the server and chromedp must all be stopped by their owners.
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m)
}
