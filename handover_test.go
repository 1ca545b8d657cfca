package reconnectingpty

import (
	"bytes"
	"encoding/binary"
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
			VT:   &vtState{Snapshot: []byte("\x18\x1bcscreen"), Height: 50, Width: 132, Parsed: 3, Answered: 2},
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
		{"flipped payload byte", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }, "corrupt"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "unexpected EOF"},
		{"truncated header", func(b []byte) []byte { return b[:10] }, "header"},
		{"unknown format", func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 99); return b }, "format 99: this release reads formats 1 to 1"},
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
// its snapshot is the same terminal once the new image has parsed it.
func TestRestoredVTTerminalIsTheSame(t *testing.T) {
	g := newVTGreeting(24, 80, 100)
	var out bytes.Buffer
	for i := range 150 {
		out.WriteString("line " + strings.Repeat("x", i%70) + "\r\n")
	}
	out.WriteString("\x1b]0;a title\x07\x1b[1;31mred\x1b[?1049h\x1b[5;5Halt screen\x1b[?25l")
	g.output(out.Bytes())
	g.afterOutput()
	st := g.state(nil)

	r := restoreVTGreeting(st, 100)
	if got := r.state(nil); !bytes.Equal(got.Snapshot, st.Snapshot) || got.Parsed != st.Parsed || got.Answered != st.Answered {
		t.Fatalf("restored terminal differs:\nwant %q (parsed %d, answered %d)\ngot  %q (parsed %d, answered %d)",
			st.Snapshot, st.Parsed, st.Answered, got.Snapshot, got.Parsed, got.Answered)
	}
	if r.title() != "a title" {
		t.Fatalf("restored title %q", r.title())
	}
	g.finish()
	r.finish()
}

// TestEarlyVTStateIsUsedOnlyIfNothingChanged pins that a snapshot taken
// while the server still served stands for the terminal only if neither
// output nor a resize came since.
func TestEarlyVTStateIsUsedOnlyIfNothingChanged(t *testing.T) {
	g := newVTGreeting(24, 80, 100)
	defer g.finish()
	g.output([]byte("before\r\n"))
	g.afterOutput()
	early := g.state(nil)
	if got := g.state(early); got != early {
		t.Fatal("an unchanged terminal was drawn again")
	}
	g.output([]byte("after\r\n"))
	g.afterOutput()
	got := g.state(early)
	if got == early || !bytes.Contains(got.Snapshot, []byte("after")) {
		t.Fatalf("output since the early snapshot is missing: %q", got.Snapshot)
	}
	early = got
	g.resized(30, 100)
	if got := g.state(early); got == early || got.Height != 30 || got.Width != 100 {
		t.Fatalf("a resize since the early snapshot is missing: %+v", got)
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
	if &held[0] != &mem[len(mem)-len(held)-len(st.Sessions[1].Ring.Held)-len(st.Sessions[1].VT.Snapshot)] {
		t.Error("the ring's bytes were copied, not read in place")
	}
}
