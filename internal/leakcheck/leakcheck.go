// Package leakcheck finds goroutines that tests left running. It does what
// the tests need of go.uber.org/goleak without making that module a
// requirement of the library's go.mod, where every importer would inherit it.
package leakcheck

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// wait bounds how long Find lets goroutines that are on their way out finish.
const wait = 5 * time.Second

// benign are functions whose goroutines belong to the runtime or the testing
// framework rather than to the code under test: a goroutine whose stack
// holds one of them is not a leak.
var benign = []string{
	"testing.Main(",
	"testing.(*M).Run(",
	"testing.RunTests(",
	"testing.runTests(",
	"testing.tRunner(",
	"testing.(*T).Run(",
	"testing.(*F).Fuzz(",
	"testing.runFuzzing(",
	"testing.(*M).startAlarm",
	"os/signal.signal_recv(",
	"os/signal.loop(",
	"runtime.ensureSigM(",
	"runtime.goexit0(",
	"runtime/trace.Start.",
	"runtime.ReadTrace(",
}

// Find returns an error listing the goroutines, other than the caller's and
// the runtime's, that are still running once a short grace period has
// passed; nil when there are none.
func Find() error {
	deadline := time.Now().Add(wait)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		leaked := leakedStacks()
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("found %d unexpected goroutines:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(delay)
	}
}

// VerifyTestMain runs the tests and, if they passed, fails the run when
// goroutines are left behind. Use it as TestMain's body.
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leakcheck:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedStacks returns the stacks of every goroutine but the caller's that
// no benign function explains.
func leakedStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := bytes.Split(buf, []byte("\n\n"))
	var leaked []string
	for i, s := range stacks {
		if i == 0 { // the calling goroutine comes first
			continue
		}
		if !isBenign(string(s)) {
			leaked = append(leaked, string(s))
		}
	}
	return leaked
}

func isBenign(stack string) bool {
	for _, f := range benign {
		if strings.Contains(stack, f) {
			return true
		}
	}
	return false
}
