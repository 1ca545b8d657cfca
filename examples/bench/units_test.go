package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// A ratio is taken within each round, then summarised: with the bare PTY
// at 10, 20, 40 and a contender at 10, 40, 40, the contender is 1, 2 and 1
// times bare, median 1, although the ratio of the medians would say 2.
func TestRatiosAreTakenWithinEachRound(t *testing.T) {
	res := &results{cfg: config{rounds: 3}}
	res.tp = []*tpRow{
		{name: "bare PTY", key: "bare", bare: true, mbps: []float64{10, 20, 40}, cpuPerGB: []float64{1, 1, 1}},
		{name: "x", key: "x", mbps: []float64{10, 40, 40}, cpuPerGB: []float64{2, 3, 4}},
	}
	res.derive()
	s := spreadOf(res.tp[1].ratio)
	if s.median != 1 || s.min != 1 || s.max != 2 {
		t.Errorf("ratio median %v (%v–%v), want 1 (1–2)", s.median, s.min, s.max)
	}
	if got := fmtSpread(res.tp[1].ratio, 2); got != "1.00 (1.00–2.00)" {
		t.Errorf("rendered %q", got)
	}
}

func TestRatioOfAMissingRoundIsMissing(t *testing.T) {
	got := ratios([]float64{2, 4}, []float64{math.NaN(), 2})
	if !math.IsNaN(got[0]) || got[1] != 2 {
		t.Errorf("ratios %v, want [NaN 2]", got)
	}
	if s := spreadOf(got); s.n != 1 || s.median != 2 {
		t.Errorf("spread %+v", s)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 200; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	if p := percentile(ds, 99); p != 198 {
		t.Errorf("p99 of 1..200 = %d, want 198", p)
	}
	if p := percentile(ds, 50); p != 100 {
		t.Errorf("p50 of 1..200 = %d, want 100", p)
	}
}

// fakeClient serves fixed reads.
type fakeClient struct{ reads [][]byte }

func (f *fakeClient) Read(p []byte) (int, error) {
	if len(f.reads) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.reads[0])
	f.reads = f.reads[1:]
	return n, nil
}
func (f *fakeClient) SetReadDeadline(time.Time) error { return nil }
func (f *fakeClient) send([]byte) error               { return nil }
func (f *fakeClient) Close() error                    { return nil }

func TestReadUntilFindsAMarkerAcrossReads(t *testing.T) {
	for _, reads := range [][]string{
		{"xxEND", "-42yy"},
		{"E", "N", "D", "-", "4", "2"},
		{"xxxxxxxxEN", "D-4", "2"},
		{"END-4", "2"},
	} {
		c := &fakeClient{}
		total := 0
		for _, r := range reads {
			c.reads = append(c.reads, []byte(r))
			total += len(r)
		}
		n, err := readUntil(context.Background(), c, []byte("END-42"), time.Time{}, make([]byte, 64))
		if err != nil || n != int64(total) {
			t.Errorf("reads %q: n %d err %v", reads, n, err)
		}
	}
	c := &fakeClient{reads: [][]byte{[]byte("END-4"), []byte("x2"), []byte("END-"), []byte("43")}}
	if _, err := readUntil(context.Background(), c, []byte("END-42"), time.Time{}, make([]byte, 64)); err == nil {
		t.Error("found a marker that was never sent")
	}
}

func TestTextScannerSkipsEscapeSequences(t *testing.T) {
	sc := &textScanner{}
	// "h" and "l" end cursor sequences, "m" a colour: none is displayed.
	if sc.shows([]byte("\x1b[?25h\x1b[?25l\x1b[1;31m\x1b]0;title m\x07"), 'h') {
		t.Error("took a sequence's final byte for a character")
	}
	// A sequence split across reads.
	if sc.shows([]byte("\x1b[?2"), 'h') || sc.shows([]byte("5h"), 'h') {
		t.Error("took a split sequence's final byte for a character")
	}
	if !sc.shows([]byte("\x1b[Hh"), 'h') {
		t.Error("missed a displayed character")
	}
}

func TestChildWritesExactlyTheBytesAsked(t *testing.T) {
	if len(line) != lineLen || line[lineLen-1] != '\n' || bytes.ContainsAny(line[:lineLen-1], "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		t.Errorf("line %q: want %d bytes, newline-terminated, no uppercase", line, lineLen)
	}
	if got := childCommand("/x/it's", "writer", "1", "A B"); got != `exec '/x/it'\''s' `+childArg+` writer '1' 'A B'` {
		t.Errorf("command %q", got)
	}
}

func TestAxisStartsAtZeroAndCoversTheData(t *testing.T) {
	for _, hi := range []float64{0.3, 1, 1.26, 7, 926.178} {
		step, top := niceAxis(hi)
		if top < hi || top > hi+step || step <= 0 {
			t.Errorf("niceAxis(%v) = step %v, top %v", hi, step, top)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100MB": 100e6, "64KiB": 65536, "1.5MB": 1.5e6, "4096": 4096} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseFlags([]string{"-contenders", "bare,nope"}, io.Discard); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown contender accepted: %v", err)
	}
}
