package vt

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestPrintableRunStopsAtTheFirstNonPrintableByte(t *testing.T) {
	slow := func(p []byte) int {
		for i, c := range p {
			if c < 0x20 || c >= 0x7f {
				return i
			}
		}
		return len(p)
	}
	// Every byte value at every offset of a run long enough to take the
	// eight-byte path, with printable neighbours of every kind (the
	// extremes 0x20 and 0x7e borrow and carry nearest to the edges).
	for _, fill := range []byte{0x20, 'a', 0x7e} {
		for n := 0; n <= 20; n++ {
			for pos := 0; pos < n; pos++ {
				for v := 0; v < 256; v++ {
					p := bytes.Repeat([]byte{fill}, n)
					p[pos] = byte(v)
					if got, want := printableRun(p), slow(p); got != want {
						t.Fatalf("printableRun(%q) = %d, want %d", p, got, want)
					}
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		p := make([]byte, rng.IntN(40))
		for i := range p {
			p[i] = byte(0x20 + rng.IntN(0x5f))
			if rng.IntN(30) == 0 {
				p[i] = byte(rng.IntN(256))
			}
		}
		if got, want := printableRun(p), slow(p); got != want {
			t.Fatalf("printableRun(%q) = %d, want %d", p, got, want)
		}
	}
}
