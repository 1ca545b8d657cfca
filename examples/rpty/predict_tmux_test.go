package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconnectingpty/reconnectingpty"
	"github.com/reconnectingpty/reconnectingpty/internal/rptytest"
)

// predictShell is the session's command: bash without rc files and with a
// short prompt.
const predictShell = "env PS1='$ ' bash --norc --noprofile"

// startPredictPane runs the CLI in tmux against addr with -predict mode
// and waits for the prompt.
func startPredictPane(t *testing.T, bin, addr, mode string) *tmuxPane {
	t.Helper()
	p := startTmux(t, bin, "-addr", addr, "-predict", mode, "--", predictShell)
	p.waitFor("the prompt", func(s screen) bool { return slices.Contains(s.rows, "$") || slices.Contains(s.rows, "$ ") })
	return p
}

// cursor is the pane's cursor row and column.
func (p *tmuxPane) cursor() (y, x int) {
	p.t.Helper()
	f := strings.Split(strings.TrimSpace(p.run("display-message", "-p", "#{cursor_y},#{cursor_x}")), ",")
	y, _ = strconv.Atoi(f[0])
	x, _ = strconv.Atoi(f[1])
	return y, x
}

// typeTimed types text one key at a time at the cursor and times each key
// from just before tmux is told to send it to the first capture of the
// pane that shows its glyph in its cell (a space: the cursor past it, as
// capture-pane drops trailing spaces). Keys are 30 ms apart once shown,
// a fast typist. tmux is driven in control mode, each poll a message.
func (p *tmuxPane) typeTimed(text string) []time.Duration {
	p.t.Helper()
	c := p.control()
	y, x := p.cursor()
	row := fmt.Sprintf("capture-pane -p -S %d -E %d", y, y)
	var lat []time.Duration
	for i, r := range text {
		start := time.Now()
		c.do("send-keys -l '" + string(r) + "'")
		for {
			if r == ' ' {
				f := strings.Split(c.do("display-message -p '#{cursor_y},#{cursor_x}'"), ",")
				if len(f) == 2 && atoi(f[0]) == y && atoi(f[1]) > x+i {
					break
				}
			} else if rs := []rune(c.do(row)); x+i < len(rs) && rs[x+i] == r {
				break
			}
			if time.Since(start) > 5*time.Second {
				p.t.Fatalf("%q (key %d) not on screen at row %d, column %d after 5 s: %q", r, i, y, x+i, c.do(row))
			}
		}
		lat = append(lat, time.Since(start))
		time.Sleep(30 * time.Millisecond)
	}
	return lat
}

// watch captures the pane, with attributes, as often as tmux allows while
// act runs and for settle after, and returns the captures.
func (p *tmuxPane) watch(settle time.Duration, act func()) []string {
	p.t.Helper()
	c := p.control()
	stop := make(chan struct{})
	var caps []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := c.try("capture-pane -p -e")
			if err != nil {
				p.t.Errorf("capture the pane: %v", err)
				return
			}
			caps = append(caps, out)
			time.Sleep(time.Millisecond)
		}
	}()
	act()
	time.Sleep(settle)
	close(stop)
	wg.Wait()
	if len(caps) == 0 {
		p.t.Fatal("no capture of the pane")
	}
	return caps
}

// typeSlowly types text one key at a time, gap apart.
func (p *tmuxPane) typeSlowly(text string, gap time.Duration) {
	p.t.Helper()
	for _, r := range text {
		p.run("send-keys", "-l", string(r))
		time.Sleep(gap)
	}
}

// underlined returns the characters a capture-pane -e capture shows
// underlined, spaces aside: the CLI draws its guesses underlined, and
// nothing in these tests' programs underlines.
func underlined(capture string) string {
	var out []rune
	ul := false
	rs := []rune(capture)
	for i := 0; i < len(rs); i++ {
		if rs[i] != 0x1b {
			if ul && rs[i] != ' ' && rs[i] != '\n' {
				out = append(out, rs[i])
			}
			continue
		}
		if i+1 < len(rs) && rs[i+1] == ']' {
			// OSC: skip to its terminator.
			for i += 2; i < len(rs) && rs[i] != 0x07 && !(rs[i] == 0x1b && i+1 < len(rs) && rs[i+1] == '\\'); i++ {
			}
			continue
		}
		if i+1 >= len(rs) || rs[i+1] != '[' {
			continue
		}
		j := i + 2
		for j < len(rs) && (rs[j] >= '0' && rs[j] <= '9' || rs[j] == ';' || rs[j] == ':') {
			j++
		}
		if j < len(rs) && rs[j] == 'm' {
			ps := strings.Split(string(rs[i+2:j]), ";")
			for k := 0; k < len(ps); k++ {
				switch {
				case ps[k] == "" || ps[k] == "0" || ps[k] == "24" || ps[k] == "4:0":
					ul = false
				case ps[k] == "4" || strings.HasPrefix(ps[k], "4:"):
					ul = true
				case (ps[k] == "38" || ps[k] == "48" || ps[k] == "58") && k+1 < len(ps):
					if ps[k+1] == "5" {
						k += 2
					} else if ps[k+1] == "2" {
						k += 4
					}
				}
			}
		}
		i = j
	}
	return string(out)
}

// plain is a capture-pane -e capture without its escape sequences.
func plain(capture string) string {
	return escapeRE.ReplaceAllString(capture, "")
}

var escapeRE = regexp.MustCompile(`\x1b(\[[0-9;:?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])`)

// trailingAttrs drops from a capture-pane -e capture the escape sequences
// that end a row: tmux reports the attributes of blank cells at the end of
// a row only if something was written there before it was erased, which
// does not change what the row shows (a guess taken back from the end of a
// row the program erased with a coloured background leaves them).
func trailingAttrs(capture string) string {
	return trailingRE.ReplaceAllString(capture, "")
}

var trailingRE = regexp.MustCompile(`(?m)(\x1b\[[0-9;:]*m)+ *$`)

// requireSameScreen fails unless panes a and b show the same cells, with
// their attributes, and have their cursors in the same place.
func requireSameScreen(t *testing.T, a, b *tmuxPane, when string) {
	t.Helper()
	var ga, gb string
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Both may still be receiving the last output: compare once
		// they agree, or fail with the last captures.
		ga = trailingAttrs(a.run("capture-pane", "-p", "-e")) + "cursor " + a.run("display-message", "-p", "#{cursor_y},#{cursor_x}")
		gb = trailingAttrs(b.run("capture-pane", "-p", "-e")) + "cursor " + b.run("display-message", "-p", "#{cursor_y},#{cursor_x}")
		if ga == gb {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: predicting pane differs from the reference:\n%q\nreference:\n%q", when, ga, gb)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// both runs f on each pane.
func both(f func(p *tmuxPane), panes ...*tmuxPane) {
	for _, p := range panes {
		f(p)
	}
}

// hasRow reports whether a row of s starts with prefix.
func hasRow(prefix string) func(screen) bool {
	return func(s screen) bool {
		return slices.ContainsFunc(s.rows, func(r string) bool { return strings.HasPrefix(r, prefix) })
	}
}

// showing reports whether a row of s contains sub.
func showing(sub string) func(screen) bool {
	return func(s screen) bool {
		return slices.ContainsFunc(s.rows, func(r string) bool { return strings.Contains(r, sub) })
	}
}

// TestCLIPredictiveEcho runs the CLI in tmux through a link with a 150 ms
// round trip, predicting (-predict auto) beside a reference that does not
// (-predict off): typed keys show at once with prediction and a round
// trip late without; after running a command, a password prompt, cat
// under stty -echo, vim in insert mode and readline's history search, the
// two panes are cell for cell the same, attributes included; and nothing
// is ever drawn where the program does not echo.
func TestCLIPredictiveEcho(t *testing.T) {
	const rtt = 150 * time.Millisecond
	ln := rptytest.StartServer(t, reconnectingpty.Config{Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"}})
	proxy := rptytest.NewDelayProxy(t, ln.Addr().String(), rtt)
	bin := buildCLI(t)
	a := startPredictPane(t, bin, proxy.Addr(), "auto")
	b := startPredictPane(t, bin, proxy.Addr(), "off")
	time.Sleep(1500 * time.Millisecond) // a heartbeat has measured the round trip

	text := "echo a-line-typed-at-the-prompt-one-key-at-a-time"
	latA, latB := a.typeTimed(text), b.typeTimed(text)
	t.Logf("keystroke to glyph over %s, %d keys: predicting p50 %.1f p95 %.1f ms; not predicting p50 %.1f p95 %.1f ms",
		rtt, len(text), ms1(pct(latA, 0.5)), ms1(pct(latA, 0.95)), ms1(pct(latB, 0.5)), ms1(pct(latB, 0.95)))
	if p95 := pct(latA, 0.95); p95 >= 20*time.Millisecond {
		t.Errorf("predicting: keystroke to glyph p95 %s, want under 20 ms", p95)
	}
	if p50 := pct(latB, 0.5); p50 < rtt*8/10 {
		t.Errorf("not predicting: keystroke to glyph p50 %s, want about the round trip (%s)", p50, rtt)
	}
	// Backspace (predicted too) and the same keys again.
	both(func(p *tmuxPane) { p.typeSlowly("\x7f\x7f\x7fime", 40*time.Millisecond) }, a, b)
	both(func(p *tmuxPane) {
		p.typeIn("\r")
		p.waitFor("the command's output", hasRow("a-line-typed-at-the-prompt"))
	}, a, b)
	requireSameScreen(t, a, b, "after running a command")

	// A password prompt: the keys are never drawn.
	both(func(p *tmuxPane) {
		p.typeIn("read -s -p 'pw: ' x; echo \"[$x]\"\r")
		p.waitFor("the password prompt", hasRow("pw:"))
	}, a, b)
	caps := a.watch(2*rtt, func() { a.typeSlowly("secret", 40*time.Millisecond) })
	for _, c := range caps {
		for _, row := range strings.Split(plain(c), "\n") {
			if strings.HasPrefix(row, "pw: ") && strings.TrimSpace(row[len("pw: "):]) != "" {
				t.Fatalf("password prompt showed %q (%d captures)", row, len(caps))
			}
		}
	}
	t.Logf("password prompt: %d captures, none showed a key", len(caps))
	b.typeSlowly("secret", 0)
	both(func(p *tmuxPane) {
		p.typeIn("\r")
		p.waitFor("the password", showing("[secret]"))
	}, a, b)
	requireSameScreen(t, a, b, "after the password prompt")

	// A program that echoes one key and then stops (read -n 1, then
	// read -s), with a coloured pen on and the rest of the line erased
	// blue: the keys after the first are shown, as guesses, and taken back
	// when their echo is overdue, the cells repainted blue and the pen
	// left green for what the program prints next.
	both(func(p *tmuxPane) {
		p.typeIn(`printf '\e[44m\e[K\e[1;32m> '; read -n 1 a; read -s b; echo "[$a$b]"; printf '\e[0m'` + "\r")
		p.waitFor("the coloured prompt", hasRow(">"))
	}, a, b)
	caps = a.watch(1500*time.Millisecond, func() { a.typeSlowly("xyz", 40*time.Millisecond) })
	shown := ""
	for _, c := range caps {
		if u := underlined(c); len(u) > len(shown) {
			shown = u
		}
	}
	if shown != "yz" {
		t.Errorf("keys after the echoed one: shown underlined %q at most, want \"yz\" (the test needs a wrong guess shown)", shown)
	}
	b.typeSlowly("xyz", 0)
	time.Sleep(1500 * time.Millisecond)
	requireSameScreen(t, a, b, "after guesses the program did not echo")
	both(func(p *tmuxPane) {
		p.typeIn("\r")
		p.waitFor("the keys read", showing("[xyz]"))
	}, a, b)
	requireSameScreen(t, a, b, "after the coloured read")

	// cat with echo off: nothing shows until cat prints the line.
	both(func(p *tmuxPane) {
		p.typeIn("stty -echo; cat; stty echo\r")
		p.waitFor("cat", func(s screen) bool { return s.cursor == "0,"+strconv.Itoa(rowOf(s, "$ stty -echo; cat")+1) })
	}, a, b)
	caps = a.watch(2*rtt, func() { a.typeSlowly("hidden", 40*time.Millisecond) })
	for i, c := range caps {
		rows := strings.Split(plain(c), "\n")
		at := slices.IndexFunc(rows, func(r string) bool { return strings.HasPrefix(r, "$ stty -echo; cat") })
		if at < 0 || strings.TrimSpace(strings.Join(rows[at+1:], "")) != "" || underlined(c) != "" {
			t.Fatalf("cat under stty -echo: the pane showed a key (capture %d of %d):\n%q", i, len(caps), c)
		}
	}
	t.Logf("cat under stty -echo: %d captures, none showed a key", len(caps))
	b.typeSlowly("hidden", 0)
	both(func(p *tmuxPane) {
		p.typeIn("\r")
		p.waitFor("cat's line", showing("hidden"))
		p.typeIn("\x04")
		p.waitFor("the prompt after cat", func(s screen) bool {
			return rowOf(s, "hidden") >= 0 && slices.Index(s.rows[rowOf(s, "hidden"):], "$") >= 0
		})
	}, a, b)
	requireSameScreen(t, a, b, "after cat under stty -echo")

	// vim in insert mode, on the alternate screen: no guess is drawn.
	both(func(p *tmuxPane) {
		p.typeIn("vim.tiny -u NONE -N -i NONE\r")
		p.waitFor("vim", hasRow("~"))
		p.typeIn("i")
		p.waitFor("insert mode", hasRow("-- INSERT --"))
	}, a, b)
	caps = a.watch(2*rtt, func() { a.typeSlowly("hello vim", 40*time.Millisecond) })
	for _, c := range caps {
		if u := underlined(c); u != "" {
			t.Fatalf("vim insert mode: the pane showed %q underlined:\n%s", u, c)
		}
	}
	b.typeSlowly("hello vim", 0)
	both(func(p *tmuxPane) {
		p.waitFor("vim's text", hasRow("hello vim"))
		p.typeIn("\x1b")
		p.waitFor("normal mode", func(s screen) bool { return !hasRow("-- INSERT --")(s) })
		p.typeIn(":q!\r")
		p.waitFor("the shell again", func(s screen) bool { return !hasRow("~")(s) && hasRow("$ vim.tiny")(s) })
	}, a, b)
	requireSameScreen(t, a, b, "after vim")

	// Readline's history search draws the keys elsewhere and rewrites the
	// line.
	both(func(p *tmuxPane) {
		p.typeIn("\x12")
		p.waitFor("the search", hasRow("(reverse-i-search)"))
		p.typeSlowly("a-line", 40*time.Millisecond)
		p.waitFor("the match", hasRow("(reverse-i-search)`a-line': echo a-line"))
		p.typeIn("\r")
		p.waitFor("the command again", func(s screen) bool { return countRows(s, "a-line-typed-at-the-prompt") == 2 })
	}, a, b)
	requireSameScreen(t, a, b, "after the history search")
}

// TestCLIPredictsNothingOnLoopback types at a prompt on loopback, where
// the round trip is under the threshold: nothing is ever drawn
// underlined.
func TestCLIPredictsNothingOnLoopback(t *testing.T) {
	ln := rptytest.StartServer(t, reconnectingpty.Config{Commander: reconnectingpty.LocalCommander{Shell: "/bin/bash"}})
	p := startPredictPane(t, buildCLI(t), ln.Addr().String(), "auto")
	time.Sleep(1500 * time.Millisecond) // a heartbeat has measured the round trip
	caps := p.watch(200*time.Millisecond, func() { p.typeSlowly("echo on-loopback", 30*time.Millisecond) })
	for _, c := range caps {
		if u := underlined(c); u != "" {
			t.Fatalf("on loopback the pane showed %q underlined:\n%s", u, c)
		}
	}
	p.waitFor("the typed line", hasRow("$ echo on-loopback"))
	t.Logf("%d captures, nothing underlined", len(caps))
}

func rowOf(s screen, prefix string) int {
	return slices.IndexFunc(s.rows, func(r string) bool { return strings.HasPrefix(r, prefix) })
}

func countRows(s screen, sub string) int {
	n := 0
	for _, r := range s.rows {
		if strings.Contains(r, sub) && !strings.HasPrefix(r, "$") {
			n++
		}
	}
	return n
}

func pct(lat []time.Duration, q float64) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms1(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
