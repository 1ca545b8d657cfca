package vt

import (
	"math/rand/v2"
	"testing"
)

// TestPrintableASCII pins the word-at-a-time check that the snapshot uses
// to paint a scrollback line straight from its stored text: it agrees with
// a byte-by-byte check on every length around a word, with the offending
// byte at every place, for the bytes at each edge of the printable range.
func TestPrintableASCII(t *testing.T) {
	slow := func(p []byte) bool {
		for _, c := range p {
			if c < 0x20 || c > 0x7e {
				return false
			}
		}
		return true
	}
	edges := []byte{0x00, 0x1f, 0x20, 0x21, 0x41, 0x7e, 0x7f, 0x80, 0x9f, 0xa0, 0xdf, 0xe0, 0xff}
	for n := 0; n <= 33; n++ {
		for at := 0; at < n; at++ {
			for _, c := range edges {
				p := make([]byte, n)
				for i := range p {
					p[i] = 'a' + byte(i%26)
				}
				p[at] = c
				if got, want := printableASCII(p), slow(p); got != want {
					t.Fatalf("len %d, %#x at %d: got %v, want %v", n, c, at, got, want)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		p := mostlyPrintable(r, 50)
		if got, want := printableASCII(p), slow(p); got != want {
			t.Fatalf("%q: got %v, want %v", p, got, want)
		}
	}
}
