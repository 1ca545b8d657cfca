package reconnectingpty

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

func TestRingKeepsTheLastBytes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 7, 64, 1000, 5000} {
		r := newReplayRing(size)
		var all []byte
		for i := 0; i < 200; i++ {
			chunk := make([]byte, rng.IntN(3*min(size, 700)))
			for j := range chunk {
				chunk[j] = 'a' + byte(rng.IntN(26))
			}
			r.write(chunk)
			all = append(all, chunk...)
			want := all[max(0, len(all)-size):]
			if got := r.appendLast(nil, r.held()); !bytes.Equal(got, want) {
				t.Fatalf("size %d after %d bytes: ring %q, want %q", size, len(all), got, want)
			}
			if r.written() != uint64(len(all)) {
				t.Fatalf("written %d, want %d", r.written(), len(all))
			}
		}
	}
}

// TestRingGrowsWithTheOutput pins that a session that wrote little holds
// little: the ring is not allocated in full up front.
func TestRingGrowsWithTheOutput(t *testing.T) {
	t.Parallel()
	r := newReplayRing(1 << 20)
	if cap(r.buf) != 0 {
		t.Fatalf("empty ring holds %d bytes", cap(r.buf))
	}
	out := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	for i := 0; i < len(out); i += 100 {
		r.write(out[i:min(i+100, len(out))])
	}
	if c := cap(r.buf); c < len(out) || c > 2*len(out) {
		t.Fatalf("after %d bytes the ring holds %d", len(out), c)
	}
	if got, _ := r.since(0); !bytes.Equal(got, out) {
		t.Fatal("the grown ring lost output")
	}
}

// TestRingSinceIsExactOrRefuses pins the resume decision: every offset the
// ring still holds gives exactly the bytes from there on; older offsets and
// offsets beyond what was written are refused.
func TestRingSinceIsExactOrRefuses(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	const size = 300
	r := newReplayRing(size)
	var all []byte
	for i := 0; i < 100; i++ {
		chunk := make([]byte, rng.IntN(200))
		for j := range chunk {
			chunk[j] = byte(rng.IntN(256))
		}
		r.write(chunk)
		all = append(all, chunk...)
		total := uint64(len(all))
		for off := uint64(0); off <= total+2; off++ {
			got, ok := r.since(off)
			held := off <= total && total-off <= size
			if ok != held {
				t.Fatalf("since(%d) after %d bytes: ok=%v, want %v", off, total, ok, held)
			}
			if ok && !bytes.Equal(got, all[off:]) {
				t.Fatalf("since(%d) after %d bytes is not the output from there", off, total)
			}
		}
	}
}

func TestReplayIsWholeWhenNothingWasDropped(t *testing.T) {
	t.Parallel()
	r := newReplayRing(16)
	r.write([]byte("\x1b[1mhé"))
	if got := string(r.replay(16)); got != "\x1b[1mhé" {
		t.Fatalf("replay %q", got)
	}
}

func TestReplayNeverStartsInsideASequence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, output, want string
	}{
		// The cut lands inside "❯" (3 bytes); the next line is clean.
		{"UTF8ThenLine", "xx❯ prompt\r\nnext line", "next line"},
		// No newline: start at the next escape sequence, not inside one.
		{"InsideCSI", "\x1b[38;5;196mred\x1b[0mplain", "\x1b[0mplain"},
		// Neither: skip the continuation bytes of the cut character.
		{"OnlyUTF8", "日本語日本語", "本語日本語"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := len(tc.output) - 1
			// The replay is the last size bytes of a larger ring, as with a
			// resume buffer larger than the replay.
			for _, ringSize := range []int{size, 4 * size} {
				r := newReplayRing(ringSize)
				r.write([]byte("z"))
				r.write([]byte(tc.output))
				// The replay dropped "z" and the first byte of output.
				got := string(r.replay(size))
				if got != tc.want {
					t.Fatalf("ring %d: replay %q, want %q", ringSize, got, tc.want)
				}
				if !utf8.ValidString(got) {
					t.Fatalf("replay %q is not valid UTF-8", got)
				}
			}
		})
	}
}
