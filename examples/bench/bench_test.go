package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty/internal/leakcheck"
)

// TestMain lets the test binary serve as the session programs, as the
// command's binary does.
func TestMain(m *testing.M) {
	runChild(os.Args)
	os.Exit(m.Run())
}

// TestTinyRun runs the whole command with tiny sizes against every
// contender installed here and checks what it prints.
func TestTinyRun(t *testing.T) {
	cfg, err := parseFlags([]string{"-rounds", "1", "-warmup=false", "-bytes", "1MB",
		"-reattach-sessions", "5", "-reattach-samples", "5", "-echo-trips", "20",
		"-idle-sessions", "5", "-timeout", "60s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fds := terminalAndSocketFDs(t)
	var log bytes.Buffer
	res, err := run(ctx, cfg, &log)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if len(res.failures) > 0 {
		t.Fatalf("failed measurements: %q\n%s", res.failures, log.String())
	}
	for _, s := range res.skipped {
		key, why, _ := strings.Cut(s, ": ")
		if key == "vt" && !strings.HasPrefix(why, "not available in this build") {
			t.Errorf("vt skipped for another reason than this build: %q", s)
		}
		t.Logf("skipped %s", s)
	}

	bare := tpBare(res.tp)
	if bare == nil {
		t.Fatal("no bare PTY throughput row")
	}
	for _, r := range res.tp {
		if !finite(r.mbps[0]) || r.mbps[0] <= 0 {
			t.Errorf("%s: no throughput figure", r.name)
		}
		// Relaying contenders deliver every byte the writer printed (and
		// the terminal's \r before each \n).
		if (r.key == "bare" || r.key == "buffered" || r.key == "vt") && r.clientMB[0]*1e6 < float64(cfg.bytes) {
			t.Errorf("%s: client received %.2f MB of %d bytes printed", r.name, r.clientMB[0], cfg.bytes)
		}
	}
	for _, r := range res.reattach {
		if r.note == "" && !(r.p50[0] > 0 && r.p99[0] >= r.p50[0]) {
			t.Errorf("%s: reattach p50 %v p99 %v", r.name, r.p50, r.p99)
		}
	}
	for _, r := range res.echo {
		if !(r.p50[0] > 0 && r.p99[0] >= r.p50[0]) {
			t.Errorf("%s: echo p50 %v p99 %v", r.name, r.p50, r.p99)
		}
	}
	for _, r := range res.idle {
		if r.key == "buffered" && !(r.heapKiB[0] > 0 && r.goroutines[0] > 0) {
			t.Errorf("%s: idle heap %v KiB, %v goroutines: an idle session costs something", r.name, r.heapKiB, r.goroutines)
		}
		if r.key != "bare" && !(r.pssKiB[0] > 0 && r.procs[0] > 0) {
			t.Errorf("%s: idle PSS %v KiB in %v processes", r.name, r.pssKiB, r.procs)
		}
	}
	checkSameRoundRatios(t, res)

	md := renderMarkdown(res)
	checkMarkdownTables(t, md)
	for _, r := range res.tp {
		if !strings.Contains(md, "| "+r.name+" | ") {
			t.Errorf("table has no row %q", r.name)
		}
	}
	svg := renderSVG(res)
	checkSVG(t, svg)
	for _, r := range res.tp {
		if !strings.Contains(svg, esc(r.name)) {
			t.Errorf("chart has no label %q", r.name)
		}
	}

	if left := tagged(tagEnv+"="+res.runID+"-", true, false); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
	if left := terminalAndSocketFDs(t); left > fds {
		t.Errorf("%d terminal and socket file descriptors open after the run, %d before", left, fds)
	}
	if err := leakcheck.Find(); err != nil {
		t.Error(err)
	}
}

// terminalAndSocketFDs counts the test process's open PTY masters,
// terminals and sockets.
func terminalAndSocketFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && (target == "/dev/ptmx" || strings.HasPrefix(target, "/dev/pts/") || strings.HasPrefix(target, "socket:")) {
			n++
		}
	}
	return n
}

// checkSameRoundRatios recomputes every ratio from the figures of its own
// round.
func checkSameRoundRatios(t *testing.T, res *results) {
	t.Helper()
	same := func(what string, got, vals, base []float64) {
		t.Helper()
		for r := range vals {
			want := vals[r] / base[r]
			if !(got[r] == want || math.IsNaN(got[r]) && math.IsNaN(want)) {
				t.Errorf("%s round %d: ratio %v, want %v / %v", what, r, got[r], vals[r], base[r])
			}
		}
	}
	bare := tpBare(res.tp)
	for _, r := range res.tp {
		same(r.name+" throughput", r.ratio, r.mbps, bare.mbps)
		same(r.name+" CPU", r.cpuRatio, r.cpuPerGB, bare.cpuPerGB)
	}
	if b := latBare(res.echo); b != nil {
		for _, r := range res.echo {
			same(r.name+" echo p50", r.r50, r.p50, b.p50)
			same(r.name+" echo p99", r.r99, r.p99, b.p99)
		}
	}
	if b := idleBare(res.idle); b != nil {
		for _, r := range res.idle {
			same(r.name+" idle heap", r.heapRatio, r.heapKiB, b.heapKiB)
		}
	}
}

// checkMarkdownTables checks that every table row has its header's columns.
func checkMarkdownTables(t *testing.T, md string) {
	t.Helper()
	cols, tables := 0, 0
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		n := strings.Count(line, "|")
		if cols == 0 {
			cols = n
			tables++
			continue
		}
		if n != cols || !strings.HasSuffix(line, "|") {
			t.Errorf("table row %q has %d bars, header %d", line, n, cols)
		}
	}
	if tables != 4 {
		t.Errorf("%d tables, want 4:\n%s", tables, md)
	}
}

// checkSVG checks that the chart is well-formed XML with an svg root.
func checkSVG(t *testing.T, svg string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("chart root element %q", root)
	}
}
