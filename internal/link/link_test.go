package link

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

const testID = "abcdefghijklmnop0123"

func TestStripRemovesFramesSplitAnywhere(t *testing.T) {
	t.Parallel()
	var stream, want []byte
	var wantFrames []Frame
	for i := range 50 {
		out := []byte("output \x1b[31mred\x1b_rpty;v=1;mode=delta;offset=3\x1b\\ \x1b_rpt")
		stream = append(stream, out...)
		want = append(want, out...)
		f := Frame{In: uint64(i * 7)}
		if i%2 == 0 {
			f.Pong, f.HasPong = uint64(i), true
		}
		stream = AppendFrame(stream, testID, f)
		wantFrames = append(wantFrames, f)
	}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		s := NewStripper(testID)
		var got []byte
		var frames []Frame
		rest := stream
		for len(rest) > 0 {
			n := min(len(rest), 1+r.IntN(40))
			out, fs, err := s.Strip(rest[:n], n == len(rest))
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			got = append(got, out...)
			frames = append(frames, fs...)
			rest = rest[n:]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: output\n%q\nwant\n%q", seed, got, want)
		}
		if len(frames) != len(wantFrames) {
			t.Fatalf("seed %d: %d frames, want %d", seed, len(frames), len(wantFrames))
		}
		for i := range frames {
			if frames[i] != wantFrames[i] {
				t.Fatalf("seed %d: frame %d = %+v, want %+v", seed, i, frames[i], wantFrames[i])
			}
		}
	}
}

func TestStripLeavesOtherLinksFramesAsOutput(t *testing.T) {
	t.Parallel()
	other := AppendFrame(nil, "ZZZZZZZZZZZZZZZZZZZZ", Frame{In: 5})
	out, frames, err := NewStripper(testID).Strip(other, true)
	if err != nil || len(frames) != 0 || !bytes.Equal(out, other) {
		t.Fatalf("got %q %v %v, want the bytes untouched", out, frames, err)
	}
}

func TestStripHeldPrefixIsOutputAtTheEnd(t *testing.T) {
	t.Parallel()
	s := NewStripper(testID)
	out, _, _ := s.Strip([]byte("x\x1b_rpty;v=1;li"), false)
	if string(out) != "x" {
		t.Fatalf("got %q, want the possible frame held", out)
	}
	out, _, _ = s.Strip(nil, true)
	if string(out) != "\x1b_rpty;v=1;li" {
		t.Fatalf("got %q at the end, want the held bytes", out)
	}
}

func TestStripRejectsABrokenFrame(t *testing.T) {
	t.Parallel()
	_, _, err := NewStripper(testID).Strip(append(Prefix(testID), "in=x\x1b\\"...), false)
	if err == nil {
		t.Fatal("want an error for in=x")
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		testID: true, "short": false, "abcdefghijklmnop;q": false, "abcdefghijklmnop\x1b": false,
	} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, !want, want)
		}
	}
}
