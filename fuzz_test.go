package reconnectingpty

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzReadInit feeds arbitrary bytes to ReadInit. It must not panic, must
// read exactly the frame it accepts and nothing after it, and an init it
// accepts must encode again with WriteInit to a frame that reads back the
// same: reader and writer agree on what fits.
//
//	go test -run '^$' -fuzz '^FuzzReadInit$' -fuzztime 10s .
func FuzzReadInit(f *testing.F) {
	f.Add(initFrame(`{"ID":"3f0e6f9a-1c2d-4b5e-8f70-9a1b2c3d4e5f","Height":24,"Width":80,"Command":"bash --norc"}`))
	f.Add(append(initFrame(`{"ID":"3f0e6f9a-1c2d-4b5e-8f70-9a1b2c3d4e5f"}`), `{"data":"ls\r"}`...))
	f.Add(initFrame(`{"id":"3f0e6f9a-1c2d-4b5e-8f70-9a1b2c3d4e5f","backendtype":"screen","Unknown":[1,{"a":null}]}`))
	f.Add(initFrame(`{"ID":"00000000-0000-0000-0000-000000000000"}`))
	f.Add(initFrame(`{"ID":"3f0e6f9a-1c2d-4b5e-8f70-9a1b2c3d4e5f","Command":"<<<&&&>>>\xff\xfe\u2028"}`))
	f.Add(initFrame(`{"ID":"3f0e6f9a-1c2d-4b5e-8f70-9a1b2c3d4e5f","Height":70000}`))
	f.Add(initFrame(`not json`))
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, '{'})
	f.Add([]byte{5})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		init, err := ReadInit(r)
		if err != nil {
			return
		}
		size := int(binary.LittleEndian.Uint16(data))
		if r.Len() != len(data)-2-size {
			t.Fatalf("ReadInit consumed %d bytes of a %d-byte frame", len(data)-r.Len(), 2+size)
		}
		var buf bytes.Buffer
		if err := WriteInit(&buf, init); err != nil {
			t.Fatalf("ReadInit accepted %+v, which WriteInit refuses: %v", init, err)
		}
		again, err := ReadInit(&buf)
		if err != nil {
			t.Fatalf("ReadInit refuses what WriteInit wrote for %+v: %v", init, err)
		}
		if !reflect.DeepEqual(again, init) {
			t.Fatalf("round trip changed the init: %+v, then %+v", init, again)
		}
	})
}

func initFrame(body string) []byte {
	return append(binary.LittleEndian.AppendUint16(nil, uint16(len(body))), body...) //nolint:gosec // test bodies are small
}

// decodedRequest is what one request amounts to.
type decodedRequest struct {
	Data          string
	Height, Width uint16
}

// FuzzRequestStream checks the streaming request decoder against
// encoding/json, which defined the stream's meaning until now: for any
// stream, the requests both decode before the first error are the same,
// and they agree on whether the stream ends cleanly. (A request with two
// data keys is left out: encoding/json keeps the last, the stream writes
// both as they come.)
//
//	go test -run '^$' -fuzz '^FuzzRequestStream$' -fuzztime 10s .
func FuzzRequestStream(f *testing.F) {
	for _, s := range []string{
		`{"data":"ls -la\r"}`,
		`{"height":50,"width":120}` + "\n" + `{"data":"q","height":50,"width":120}`,
		` {"DATA":"é\u00e9\ud83d\ude00\ud800x\\\"\/\b\f\n\r\t"} {"Height":1,"WIDTH":2}`,
		`{"data":null,"height":null}{"unknown":[1,-2.5e+3,true,false,null,{"a":[{}]}],"data":"k"}`,
		`{"data":"\xff\xc3\x28\xe2\x82"}`,
		`{"height":65536,"width":1}`,
		`{"height":-1}`, `{"height":1.0}`, `{"height":01}`, `{"data":5}`, `[]`, `"x"`, `null`, `nul`,
		`{"data":"unterminated`, `{"data":"x",}`, `{"a":1 "b":2}`, `{"data":"\u12"}`, `{"data":"tab	raw"}`,
		`{}{}{}`, `{"data":"a"}garbage`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantEOF := decodeWithJSON(data)
		got, gotEOF, dataKeys := decodeWithReader(data)
		n := min(len(want), len(got))
		for i := 0; i < n; i++ {
			if dataKeys[i] > 1 {
				return
			}
			if got[i] != want[i] {
				t.Fatalf("request %d: stream decoder %+v, encoding/json %+v", i, got[i], want[i])
			}
		}
		if len(got) != len(want) || gotEOF != wantEOF {
			for _, k := range dataKeys {
				if k > 1 {
					return
				}
			}
			t.Fatalf("stream decoder took %d requests (clean end %v), encoding/json %d (clean end %v)",
				len(got), gotEOF, len(want), wantEOF)
		}
	})
}

func decodeWithJSON(data []byte) ([]decodedRequest, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []decodedRequest
	for {
		var req Request
		if err := dec.Decode(&req); err != nil {
			return out, errors.Is(err, io.EOF)
		}
		out = append(out, decodedRequest{req.Data, req.Height, req.Width})
	}
}

func decodeWithReader(data []byte) ([]decodedRequest, bool, []int) {
	rr := newRequestReader(bytes.NewReader(data), len(data)+1)
	var out []decodedRequest
	var keys []int
	for {
		var got strings.Builder
		before := rr.dataKeys
		h, w, err := rr.next(func(p []byte) error {
			got.Write(p)
			return nil
		})
		keys = append(keys, rr.dataKeys-before)
		if err != nil {
			return out, errors.Is(err, io.EOF), keys
		}
		out = append(out, decodedRequest{got.String(), h, w})
	}
}

// FuzzReplay writes arbitrary output into a replay ring in arbitrary
// pieces and checks what an attaching connection would get: the exact
// delta from any offset still held, and for a plain attach the kept tail
// of the output, cut where safeStart says, and safeStart's cut
// is at a line start, else an escape, else a character boundary.
//
//	go test -run '^$' -fuzz '^FuzzReplay$' -fuzztime 10s .
func FuzzReplay(f *testing.F) {
	f.Add([]byte("line one\nline two\n\x1b[31mred\x1b[0m ünïcödé ❯\n"), uint16(16), uint8(3))
	f.Add([]byte("\x1b[1;2H\x1b]0;title\x07 no newline at all, ❯❯❯❯"), uint16(7), uint8(1))
	f.Add([]byte(strings.Repeat("❯", 100)), uint16(10), uint8(5))
	f.Add([]byte("short"), uint16(64), uint8(2))
	f.Add([]byte{0xe2, 0x9d, 0xaf, 0x80, 0x80, 0x80, 0x80, 'a'}, uint16(6), uint8(1))
	f.Fuzz(func(t *testing.T, output []byte, size uint16, piece uint8) {
		size = size%4096 + 1
		r := newReplayRing(int(size))
		step := int(piece)%97 + 1
		for p := output; len(p) > 0; {
			n := min(step, len(p))
			r.write(p[:n])
			p = p[n:]
			step = step*7%97 + 1
		}
		kept := output[max(0, len(output)-int(size)):]
		got := r.replay(int(size))
		// A resuming connection gets exactly the bytes from any offset the
		// ring still holds, and is refused one it does not.
		total := uint64(len(output))
		for _, off := range []uint64{0, total / 2, total - uint64(len(kept)), total, total + 1} {
			delta, ok := r.since(off)
			held := off <= total && total-off <= uint64(r.held())
			if ok != held {
				t.Fatalf("since(%d) ok=%v with %d of %d bytes held", off, ok, r.held(), total)
			}
			if ok && !bytes.Equal(delta, output[off:]) {
				t.Fatalf("since(%d) = %q, want %q", off, delta, output[off:])
			}
		}
		if len(output) <= int(size) {
			if !bytes.Equal(got, output) {
				t.Fatalf("nothing was dropped, yet the replay is %q, not %q", got, output)
			}
			return
		}
		cut := safeStart(kept)
		if cut < 0 || cut > len(kept) {
			t.Fatalf("safeStart = %d for %d bytes", cut, len(kept))
		}
		if !bytes.Equal(got, kept[cut:]) {
			t.Fatalf("replay %q, want the kept tail %q from %d", got, kept, cut)
		}
		head := kept[:min(len(kept), 8<<10)]
		switch nl, esc := bytes.IndexByte(head, '\n'), bytes.IndexByte(head, 0x1b); {
		case nl >= 0:
			if cut != nl+1 {
				t.Fatalf("cut at %d, not after the first newline at %d", cut, nl)
			}
		case esc >= 0:
			if cut != esc {
				t.Fatalf("cut at %d, not at the first escape at %d", cut, esc)
			}
		case cut < len(kept) && !utf8.RuneStart(kept[cut]):
			for i := 0; i < min(len(kept), utf8.UTFMax); i++ {
				if utf8.RuneStart(kept[i]) {
					t.Fatalf("cut at %d, inside a character, though %d starts one", cut, i)
				}
			}
		}
	})
}
