package resume

import (
	"testing"
)

func TestHeaderWireFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		h    Header
		want string
	}{
		{Header{Mode: Delta, Offset: 0}, "\x1b_rpty;v=1;mode=delta;offset=0\x1b\\"},
		{Header{Mode: Delta, Offset: 12345}, "\x1b_rpty;v=1;mode=delta;offset=12345\x1b\\"},
		{Header{Mode: Reset, Offset: 1 << 40, Len: 812}, "\x1b_rpty;v=1;mode=reset;offset=1099511627776;len=812\x1b\\"},
		{Header{Mode: Reset, Offset: 1<<64 - 1, Len: 1<<64 - 1}, "\x1b_rpty;v=1;mode=reset;offset=18446744073709551615;len=18446744073709551615\x1b\\"},
	} {
		got := string(AppendHeader(nil, tc.h))
		if got != tc.want {
			t.Fatalf("%+v encodes as %q, want %q", tc.h, got, tc.want)
		}
		if len(got) > MaxLen {
			t.Fatalf("%q is longer than MaxLen", got)
		}
		// Parsed whole and from every split: a prefix asks for more.
		stream := got + "after"
		for i := 0; i <= len(stream); i++ {
			h, n, status, err := Parse([]byte(stream[:i]))
			switch {
			case err != nil:
				t.Fatalf("%q: %v", stream[:i], err)
			case i < len(got) && status != NeedMore:
				t.Fatalf("prefix %q: status %v, want NeedMore", stream[:i], status)
			case i >= len(got) && (status != Found || h != tc.h || n != len(got)):
				t.Fatalf("%q: %+v, %d, %v; want %+v, %d", stream[:i], h, n, status, tc.h, len(got))
			}
		}
	}
}

func TestStreamsWithoutAHeader(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"x", "bash$ ", "\x1b[0m", "\x1b_other;thing\x1b\\", "\x1b_rptz"} {
		if _, _, status, err := Parse([]byte(s)); status != Absent || err != nil {
			t.Fatalf("%q: status %v, %v; want Absent", s, status, err)
		}
	}
}

func TestMalformedHeadersAreErrors(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"\x1b_rpty;v=2;mode=delta;offset=1\x1b\\",
		"\x1b_rpty;v=1;mode=sideways;offset=1\x1b\\",
		"\x1b_rpty;v=1;mode=delta;offset=-1\x1b\\",
		"\x1b_rpty;v=1;mode=delta\x1b\\",
		"\x1b_rpty;v=1;mode=reset;offset=1\x1b\\",
		"\x1b_rpty;v=1;mode=reset;offset=1;len=x\x1b\\",
		"\x1b_rpty;v=1;v=1;mode=delta;offset=1\x1b\\",
		"\x1b_rpty;v=1;mode=delta;offset=18446744073709551616\x1b\\",
		"\x1b_rpty;" + string(make([]byte, MaxLen)),
	} {
		if _, _, _, err := Parse([]byte(s)); err == nil {
			t.Fatalf("%q parsed without an error", s)
		}
	}
}

// TestUnknownKeysAreIgnored leaves room for later additions to v=1.
func TestUnknownKeysAreIgnored(t *testing.T) {
	t.Parallel()
	h, _, status, err := Parse([]byte("\x1b_rpty;v=1;mode=delta;offset=7;future=yes\x1b\\"))
	if err != nil || status != Found || h != (Header{Mode: Delta, Offset: 7}) {
		t.Fatalf("got %+v, %v, %v", h, status, err)
	}
}
