package reconnectingpty

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func testHandoverState() *handoverState {
	return &handoverState{
		Written: time.Unix(1700000000, 123).UTC(),
		Sessions: []sessionState{{
			ID: uuid.New(), Backend: BackendBuffered, Command: "top", PID: 41, PTY: 7,
			Started: time.Unix(1600000000, 0).UTC(), Height: 24, Width: 80,
			Ring:   ringState{Total: 5 << 20, Held: []byte("the last bytes")},
			Inputs: map[string]uint64{"k3Jq9mVb2xWf0aZ8Lr5tQw": 43},
		}, {
			ID: uuid.New(), Backend: BackendVT, PID: 42, PTY: 8, Height: 50, Width: 132,
			IdleDeadline: time.Unix(1700000300, 0).UTC(),
			Closing:      true, CloseReason: DisconnectSessionClosed, CloseDetail: "by request",
			Ring: ringState{Total: 3, Held: []byte("abc")},
			VT:   &vtState{Term: []byte("\x01the terminal"), Height: 50, Width: 132, Parsed: 3, Answered: 2},
		}},
	}
}

// encoded returns st as a state, refs filled in as decoding leaves them.
func encoded(t *testing.T, st *handoverState) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := encodeHandover(&b, st); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestHandoverStateRoundTrips(t *testing.T) {
	st := testHandoverState()
	got, err := decodeHandoverBytes(encoded(t, st))
	if err != nil {
		t.Fatal(err)
	}
	// The byte ranges are the format's business; what a reader gets is
	// the bytes.
	for i := range got.Sessions {
		got.Sessions[i].Ring.HeldAt = byteRange{}
		if got.Sessions[i].VT != nil {
			got.Sessions[i].VT.SnapshotAt = byteRange{}
			got.Sessions[i].VT.TermAt = byteRange{}
			got.Sessions[i].VT.Snapshot = nil // (empty: the format 1 field)
		}
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("decoded %+v\nwant    %+v", got, st)
	}
}

func TestHandoverStateRefusesDamage(t *testing.T) {
	good := encoded(t, testHandoverState())
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"flipped description byte", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }, "corrupt"},
		{"flipped output byte", func(b []byte) []byte { b[handoverHeaderLen+3] ^= 1; return b }, "bytes 0+14 have checksum"},
		{"flipped terminal byte", func(b []byte) []byte { b[handoverHeaderLen+14+3+2] ^= 1; return b }, "bytes 17+13 have checksum"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "unexpected EOF"},
		{"truncated header", func(b []byte) []byte { return b[:10] }, "header"},
		{"unknown format", func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 99); return b }, "format 99: this release reads formats 1 to 2"},
		{"not a state", func(b []byte) []byte { copy(b, "garbage!"); return b }, "bad magic"},
		{"absurd length", func(b []byte) []byte { binary.BigEndian.PutUint64(b[12:], 1<<62); return b }, "over the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeHandoverBytes(tc.damage(bytes.Clone(good)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestHandoverEnvRoundTrips(t *testing.T) {
	e := handoverEnv{
		execAt: time.Unix(0, 1700000000123456789), state: 3,
		sessions:  []envSession{{pid: 100, pty: 4}, {pid: 101, pty: 5}},
		listeners: map[string]int{"rpty": 6, "http.v2": 7},
		conns:     []int{8, 9},
	}
	got, err := parseHandoverEnv(e.String() + " future=field")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) || !got.execAt.Equal(e.execAt) {
		t.Fatalf("parsed %+v, want %+v", got, e)
	}
	for _, bad := range []string{"", "v2 state=3", "v1", "v1 state=x", "v1 state=3 sessions=1", "v1 state=3 listeners=a b:4", "v1 state=3 listeners=sp ace:4", "v1 state=3 conns=x"} {
		if _, err := parseHandoverEnv(bad); err == nil {
			t.Errorf("%q parsed; want an error", bad)
		}
	}
}

// TestRestoredVTTerminalIsTheSame pins that a vt terminal handed over as
// its state (format 2) is the same terminal at once, with nothing to
// parse, and one handed over as a snapshot (format 1) is the same once
// the new image has parsed it.
func TestRestoredVTTerminalIsTheSame(t *testing.T) {
	g := newVTGreeting(24, 80, 100)
	defer g.finish()
	var out bytes.Buffer
	for i := range 150 {
		out.WriteString("line " + strings.Repeat("x", i%70) + "\r\n")
	}
	out.WriteString("\x1b]0;a title\x07\x1b[1;31mred\x1b[?1049h\x1b[5;5Halt screen\x1b[?25l\x1b[c")
	g.output(out.Bytes())
	g.afterOutput(false)
	want := g.greet(nil, nil)

	for _, format := range []struct {
		name  string
		st    *vtState
		parse bool
	}{{"state", g.state(nil), false}, {"snapshot", formatOneState(g), true}} {
		st := format.st
		r, parse, err := restoreVTGreeting(st, 100)
		if err != nil || parse != format.parse {
			t.Fatalf("%s: restore: %v (to parse: %v)", format.name, err, parse)
		}
		if !parse && len(r.pending) > 0 {
			t.Fatalf("%s: %d bytes wait to be parsed", format.name, len(r.pending))
		}
		if got := r.greet(nil, nil); !bytes.Equal(got, want) {
			t.Fatalf("%s: restored terminal differs:\nwant %q\ngot  %q", format.name, want, got)
		}
		if got := r.answeredThrough(); got != st.Answered || st.Answered == 0 {
			t.Fatalf("%s: answered through %d, handed over %d", format.name, got, st.Answered)
		}
		if got := r.state(nil); got.Parsed != st.Parsed || !bytes.Equal(snapshotOf(t, got), want) {
			t.Fatalf("%s: handed over again: parsed %d of %d", format.name, got.Parsed, st.Parsed)
		}
		if r.title() != "a title" {
			t.Fatalf("%s: restored title %q", format.name, r.title())
		}
		r.finish()
	}
	// A new image configured with another scrollback redraws the
	// terminal into one of its own.
	r, parse, err := restoreVTGreeting(g.state(nil), 10)
	if err != nil || !parse {
		t.Fatalf("another scrollback: %v (to parse: %v)", err, parse)
	}
	defer r.finish()
	if got := r.greet(nil, nil); !bytes.Contains(got, []byte("alt screen")) || bytes.Count(got, []byte("line ")) > 10+24 {
		t.Fatalf("another scrollback: %q", got)
	}
}

// TestHandoverReadsThePreviousFormat: a state written by the previous
// release (format 1, testdata/handover-v1.state, written by its
// encodeHandover with a vt terminal carried as a snapshot) is read, and
// its terminal restored as it was.
func TestHandoverReadsThePreviousFormat(t *testing.T) {
	mem, err := os.ReadFile("testdata/handover-v1.state")
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.BigEndian.Uint32(mem[8:]); v != 1 || handoverOldest > 1 {
		t.Fatalf("testdata holds format %d; this release reads %d to %d", v, handoverOldest, handoverVersion)
	}
	st, err := decodeHandoverBytes(mem)
	if err != nil {
		t.Fatalf("read the previous format: %v", err)
	}
	if len(st.Sessions) != 2 || st.Sessions[0].Inputs["k3Jq9mVb2xWf0aZ8Lr5tQw"] != 43 || string(st.Sessions[0].Ring.Held) != "the last bytes" {
		t.Fatalf("sessions read as %+v", st.Sessions)
	}
	s := st.Sessions[1]
	if s.VT == nil || len(s.VT.Snapshot) == 0 || len(s.VT.Term) != 0 {
		t.Fatalf("vt session read as %+v", s.VT)
	}
	r, parse, err := restoreVTGreeting(s.VT, 100)
	if err != nil || !parse {
		t.Fatalf("restore: %v (to parse: %v)", err, parse)
	}
	defer r.finish()
	// The same output (the ring holds all of it) given to a terminal
	// that never crossed an upgrade.
	g := newVTGreeting(24, 80, 100)
	defer g.finish()
	g.output(s.Ring.Held)
	g.afterOutput(false)
	if got, want := r.greet(nil, nil), g.greet(nil, nil); !bytes.Equal(got, want) {
		t.Fatalf("restored from format 1:\n%q\nwant\n%q", got, want)
	}
	if r.title() != "a title" {
		t.Fatalf("title %q", r.title())
	}
}

// TestHandedOverInputIsNotTakenTwice: what the program was given of a
// client's input travels with the session, so input the client resends
// to the new image (it was not told the old one took it) is dropped.
func TestHandedOverInputIsNotTakenTwice(t *testing.T) {
	const id = "k3Jq9mVb2xWf0aZ8Lr5tQw"
	var written []byte
	write := func(p []byte) (int, error) { written = append(written, p...); return len(p), nil }
	var old inputStreams
	in := &linkInput{id: id, st: old.get(id, 0)}
	if err := in.write([]byte("abc"), write); err != nil {
		t.Fatal(err)
	}
	var restored inputStreams
	restored.restore(old.taken())
	again := &linkInput{id: id, st: restored.get(id, 0)}
	if err := again.write([]byte("abcdef"), write); err != nil {
		t.Fatal(err)
	}
	if string(written) != "abcdef" {
		t.Fatalf("the program got %q, want abcdef: resent input taken twice or lost", written)
	}
}

// The new image reads the state where it lies (the memory file, mapped):
// its bytes are slices of that memory, not copies.
func TestHandoverStateReadInPlace(t *testing.T) {
	st := testHandoverState()
	mem := encoded(t, st)
	got, err := decodeHandoverBytes(mem)
	if err != nil {
		t.Fatal(err)
	}
	held := got.Sessions[0].Ring.Held
	if &held[0] != &mem[handoverHeaderLen] {
		t.Error("the ring's bytes were copied, not read in place")
	}
}
