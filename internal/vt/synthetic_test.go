package vt

import (
	"fmt"
	"strings"
	"testing"
)

// synthetic are streams that each exercise one feature, compared with
// xterm.js cell for cell.
var synthetic = []struct{ name, data string }{
	{"plain", "hello\r\nworld"},
	{"wrap", strings.Repeat("abcdefghij", 25)},
	{"wrap-pending-then-cr", strings.Repeat("x", 80) + "\r\ny"},
	{"scroll-into-scrollback", strings.Repeat("line\r\n", 60)},
	{"lf-without-cr", "a\nb\nc"},
	{"cursor-motion", "\x1b[5;10Hx\x1b[2Ay\x1b[3Bz\x1b[4Cw\x1b[2Dv\x1b[Eu\x1b[Ft\x1b[20Gs\x1b[7dr\x1b[3`q\x1b[2ap\x1b[2eo"},
	{"cup-clamp", "\x1b[999;999Hx\x1b[0;0Hy"},
	{"erase-display", "abc\r\ndef\r\nghi\x1b[2;2H\x1b[0J" + "\x1b[1;1H\x1b[44m\x1b[1J\x1b[3;1H\x1b[2J"},
	{"erase-line", "abcdefgh\x1b[4G\x1b[K\r\nabcdefgh\x1b[4G\x1b[1K\r\nabcdefgh\x1b[2K"},
	{"erase-bg", "\x1b[41mred\x1b[K\r\n\x1b[42m\x1b[2J"},
	{"ech", "abcdefgh\x1b[3G\x1b[3X"},
	{"ich-dch", "abcdefgh\x1b[3G\x1b[2@XY\x1b[2P"},
	{"il-dl", "1\r\n2\r\n3\r\n4\r\n5\x1b[2;1H\x1b[2L\x1b[4;1H\x1b[1M"},
	{"su-sd", "1\r\n2\r\n3\r\n4\r\n5\x1b[2S\x1b[43m\x1b[1T"},
	{"scroll-region", "\x1b[3;6r" + strings.Repeat("region\n", 10) + "\x1b[r"},
	{"scroll-region-top", "top\x1b[1;5r\x1b[5;1H" + strings.Repeat("x\n", 8)},
	{"ri-at-top", "a\r\nb\x1b[1;1H\x1bM\x1bMc"},
	{"ind-nel", "a\x1bDb\x1bEc"},
	{"c1-controls", "a\u0084b\u0085c\u0088"},
	{"origin-mode", "\x1b[5;10r\x1b[?6h\x1b[1;1Hx\x1b[20;1Hy\x1b[?6l"},
	{"autowrap-off", "\x1b[?7l" + strings.Repeat("z", 100) + "\x1b[?7h"},
	{"insert-mode", "abcdef\x1b[1G\x1b[4hXY\x1b[4l"},
	{"tabs", "a\tb\tc\x1b[3g\x1b[5G\x1bH\r\tX\x1b[2I\x1b[Z\x1b[0g"},
	{"tab-clear-all", "\x1b[3g\tX"},
	{"cht-cbt", "\x1b[3Ia\x1b[2Zb"},
	{"backspace", "abc\b\bX\b\b\b\bY"},
	{"reverse-wrap", "\x1b[?45h" + strings.Repeat("q", 85) + "\b\b\b\b\b\b\bR"},
	{"rep", "a\x1b[5b\r\nxy\x1b[3b"},
	{"rep-after-csi", "a\x1b[m\x1b[3b"},
	{"decaln", "\x1b[41m\x1b#8"},
	{"decaln-origin-alt", "\x1b[?1049h\x1b[5;8r\x1b[?6h\x1b#8"},
	{"decaln-origin-wraps", strings.Repeat("x\r\n", 30) + "\x1b[5;8r\x1b[?6h\x1b#8"},
	{"ris", "\x1b]2;keep\x07\x1b[1;31mred\x1b[?1h\x1b[?25l\x1bc"},
	{"decstr", "\x1b[1;31m\x1b[?1h\x1b[4h\x1b[5;10r\x1b[?6h\x1b[?25l\x1b[!p"},
	{"sgr-basic", "\x1b[1mb\x1b[2md\x1b[3mi\x1b[4mu\x1b[5mk\x1b[7mr\x1b[8mh\x1b[9ms\x1b[53mo\x1b[0mn"},
	{"sgr-off", "\x1b[1;2;3;4;5;7;8;9;53mx\x1b[22;23;24;25;27;28;29;55my"},
	{"sgr-colors", "\x1b[31;42mA\x1b[91;102mB\x1b[38;5;200;48;5;17mC\x1b[38;2;1;2;3;48;2;250;251;252mD\x1b[39;49mE"},
	{"sgr-256-below-16", "\x1b[1;38;5;1mA\x1b[48;5;9mB\x1b[0;38;5;15;48;5;0mC\x1b[1;31mD\x1b[38;5;7;48;5;4m"},
	{"sgr-colon", "\x1b[38:5:100mA\x1b[48:2::10:20:30mB\x1b[38:2:1:2:3mC\x1b[4:3mD\x1b[4:0mE\x1b[4:5mF\x1b[21mG\x1b[24mH"},
	{"sgr-underline-styles", "\x1b[4:1ma\x1b[4:2mb\x1b[4:3mc\x1b[4:4md\x1b[4:5me\x1b[4:9mf\x1b[4:mg"},
	{"sgr-58", "\x1b[58;5;3mA\x1b[58:2::1:2:3mB\x1b[59mC\x1b[4;58;2;1;2;3mD"},
	{"sgr-58-underline-colour", "\x1b[4:3;58;2;255;0;0ma\x1b[58;5;3mb\x1b[24mc\x1b[4m\x1b[59md\x1b[0;58;5;9me\x1b[4mf"},
	{"sgr-58-with-link", "\x1b]8;;http://u\x07\x1b[58:2::1:2:3ma\x1b]8;;\x07b\x1b[4mc"},
	{"sgr-58-pen-kept", "\x1b[4;58;5;200m"},
	{"sgr-58-decrc-no-underline", "\x1b]8;;http://x\x07\x1b7\x1b]8;;\x07\x1b[58;5;4m\x1b8x\x1b[2;1Hy"},
	{"sgr-58-decrc", "\x1b[4m\x1b7\x1b[24;58;5;1m\x1b8x"},
	{"pen-kept", "\x1b[1;38;5;33;48;2;1;2;3;4:3m"},
	{"title", "\x1b]0;zero\x07\x1b]1;icon\x07\x1b]2;two\x1b\\"},
	{"osc-skip", "\x1b]8;;http://x\x07link\x1b]8;;\x07 \x1b]52;c;aGk=\x07\x1b]133;A\x07prompt\x1b]7;file://h/p\x1b\\"},
	{"osc8-underline", "\x1b[4m\x1b]8;id=1;http://x\x07a\x1b[24mb\x1b]8;;\x07c"},
	{"osc8-links", "\x1b]8;;http://a\x07ab\x1b]8;;\x07c\x1b]8;id=x;http://b\x07d\x1b]8;;\x07e\x1b]8;id=x;http://b\x07f" +
		"\x1b]8;;http://a\x07\x1b[4mg"},
	{"osc8-open-across-lines", "\x1b]8;;http://long\x07\x1b[32m" + strings.Repeat("L", 100) + "\r\nmore"},
	{"osc8-id-on-two-rows", "\x1b]8;id=1;http://a\x07top\x1b]8;;\x07\r\nmid\r\n\x1b]8;id=1;http://a\x07bottom\x1b]8;;\x07"},
	{"osc8-underline-style-kept", "\x1b[4:3m\x1b]8;;http://u\x07x\x1b]8;;\x07y\x1b]8;;http://v\x07"},
	{"osc8-decsc", "\x1b]8;;http://s\x07\x1b7\x1b]8;;\x07z\x1b8w\x1b]8;;\x07\x1b[4m\x1b7\x1b[24m"},
	{"osc8-params", "\x1b]8;foo=1:id=k:bar;http://x;y\x07a\x1b]8; ;\x07b\x1b]8;x;\x07c\x1b]8;id=;http://z\x07d"},
	{"dcs-skip", "\x1bP1$r0m\x1b\\a\x1bPq#0;2;0;0;0#0!10~\x1b\\b"},
	{"apc-pm-sos", "\x1b_apc\x1b\\a\x1b^pm\x1b\\b\x1bXsos\x1b\\c"},
	{"charsets", "\x1b(0lqk\x1b(B x\x1b)0\x0elqk\x0f y\x1b*A\x1bn#\x1b+0\x1bo`\x1b(A#"},
	{"charsets-national", "\x1b(K@[\\]{|}~\x1b(5[\x1b(R#@\x1b(=#_"},
	{"decrc-charset-then-print", "x\x1b7\x1b(0\x1b8e"},
	{"decrc-charset-g1", "\x1b)0\x0eq\x1b7\x0fq\x1b8q"},
	{"decrc-charset-g0-g1", "\x1b(0\x1b)B\x1b7\x0eq\x1b8q\x0fq"},
	{"decrc-charset-pending-wrap", strings.Repeat("x", 79) + "\x1b7\x1b(0\x1b8e"},
	{"decrc-pen-style-kept", "\x1b[4m\x1b7\x1b[4:3m\x1b[24m\x1b[4:3m\x1b8x"},
	{"decrc-pen-no-underline-style-kept", "\x1b7\x1b[4:2m\x1b8x"},
	{"decrc-pen-link-without-flag", "\x1b7\x1b]8;;http://l\x07\x1b8x"},
	{"decrc-pen-and-charset", "\x1b(0\x1b[4m\x1b7\x1b(B\x1b[24m\x1b8"},
	{"decrc-pen-then-sgr", "\x1b[4m\x1b7\x1b[24m\x1b8\x1b[31mx"},
	{"decaln-underlined", "\x1b[4m\x1b#8\x1b[3;3Hx"},
	{"decaln-underlined-saved", "\x1b[5;5H\x1b[32m\x1b7\x1b[4:2m\x1b#8\x1b[24m"},
	{"decaln-underlined-alt", "\x1b[?1049h\x1b[4m\x1b#8\x1b[m\x1b[2;2Hy"},
	{"charset-default", "\x1b(0\x1b%G q"},
	{"decsc-decrc", "\x1b[3;5H\x1b[1;32m\x1b(0\x1b7\x1b[m\x1b(B\x1b[10;10Hx\x1b8q"},
	{"csi-s-u", "\x1b[4;4H\x1b[s\x1b[1;1H\x1b[u*"},
	{"decsc-underline", "\x1b[4m\x1b7\x1b[24m\x1b8u"},
	{"alt-47", "main\x1b[?47halt\x1b[?47l"},
	{"alt-1047", "main\x1b[?1047halt"},
	{"alt-1049", "main\x1b[5;5H\x1b[?1049h\x1b[2Jalt screen\x1b[?1049l!"},
	{"alt-active", "main text\r\n\x1b[?1049h\x1b[44m\x1b[2J\x1b[3;3Hin alt\x1b[1;3r"},
	{"alt-1048", "\x1b[2;2H\x1b[?1048h\x1b[9;9H\x1b[?1048lX"},
	{"modes", "\x1b[?1h\x1b=\x1b[?2004h\x1b[?1004h\x1b[?1000h\x1b[?1006h\x1b[?25l\x1b[?12h\x1b[20h"},
	{"modes-mouse", "\x1b[?1002h\x1b[?1016h\x1b[?9h\x1b[?1003h\x1b[?1005h\x1b[?1015h"},
	{"mouse-off", "\x1b[?1003h\x1b[?1006h\x1b[?1000l\x1b[?1006l"},
	{"cursor-style", "\x1b[3 q"},
	{"cursor-style-bar", "\x1b[6 q"},
	{"cursor-style-odd", "\x1b[7 q"},
	{"cursor-style-reset", "\x1b[5 q\x1b[0 q"},
	{"lnm", "\x1b[20ha\nb\x1b[20l\nc"},
	{"wide", "中文字\r\n" + strings.Repeat("中", 45)},
	{"wide-at-wrap", strings.Repeat("x", 79) + "中"},
	{"wide-overwrite", "中文\x1b[1;2Ha\x1b[1;3Hb"},
	{"wide-nowrap", "\x1b[?7l" + strings.Repeat("x", 79) + "中中"},
	{"combining", "e\u0301 a\u0308\u0323 \u0301lone"},
	{"combining-wide", "中\u0301x"},
	{"combining-after-wrap", strings.Repeat("x", 80) + "\u0301y"},
	{"emoji", "\U0001F600 \U0001F44D\U0001F3FD ok"},
	{"zwj", "\U0001F468\u200D\U0001F469\u200D\U0001F467 |"},
	{"vs16", "\u2764\uFE0F|\u263A\uFE0F|"},
	{"invalid-utf8", "a\xffb\xc3(c\xe2\x82d\xf0\x9f\x98e\xed\xa0\x80f\xef\xbb\xbfg\xc0\xafh"},
	{"c1-utf8", "a\u009b31mred\u009d2;t\u009c"},
	{"controls-in-csi", "\x1b[3\r;5Hx\x1b[\x08C"},
	{"esc-broken", "\x1b[12;\x1b[31mx\x1b]2;a\x18b\x1b[?1;2$pq"},
	{"csi-ignore", "\x1b[1;2<3Hz\x1b[?5<q"},
	{"many-params", "\x1b[" + strings.Repeat("1;", 40) + "31mx"},
	{"huge-param", "\x1b[99999999999999999Cx\x1b[99999999999999999Dy"},
	{"ed3", strings.Repeat("l\r\n", 40) + "\x1b[3J"},
	{"ed1-last-col", strings.Repeat("w", 30) + "\x1b[1;80H\x1b[1J"},
	{"sl-sr", "abcdef\r\nabcdef\x1b[2 @\x1b[1 A"},
	{"decic-decdc", "abcdef\r\nabcdef\x1b[3G\x1b[2'}\x1b[1'~"},
	{"decsca", "\x1b[1\"qAB\x1b[0\"qCD\x1b[1;1H\x1b[?K"},
	{"lone-zero-width-at-margin", strings.Repeat("x", 80) + "\u0301\u0301z"},
	// Whole-screen scrolls move the screen's window over its backing
	// array (slideUp), copying it back every screenful: floods past
	// several such copies, mixed with region scrolls, reverse index and
	// the alternate screen, and text printed over coloured cells with the
	// default pen and over blank ones with a coloured pen.
	{"flood-slides", numbered(130) + "\x1b[5;10r\x1b[10;1H" + numbered(7) + "\x1b[r\x1b[1;1H\x1bM\x1bM" +
		"\x1b[24;1H" + numbered(60) + "\x1b[?1049h" + numbered(75) + "\x1b[3;3Hx\x1b[?1049l" + numbered(30)},
	{"flood-pens", strings.Repeat("\x1b[41;33mcoloured line of text\x1b[m\r\n", 30) + "\x1b[20A" +
		strings.Repeat("plain over colour\r\n", 5) + "\x1b[1;4mbold underlined\x1b[m past\r\n\x1b[44m" + numbered(40)},
	{"save-restore-scrolled", strings.Repeat("s\r\n", 30) + "\x1b[5;5H\x1b7" + strings.Repeat("t\r\n", 5) + "\x1b8#"},
}

// numbered is n lines, each its number and some text, ending in CR LF.
func numbered(n int) string {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "%03d %s\r\n", i, strings.Repeat("ab", i%30))
	}
	return sb.String()
}

func syntheticCases() []diffCase {
	var cases []diffCase
	for _, s := range synthetic {
		for _, size := range [][2]int{{24, 80}} {
			cases = append(cases, diffCase{
				name: fmt.Sprintf("%s/%dx%d", s.name, size[0], size[1]),
				rows: size[0], cols: size[1], sb: 100,
				chunks: [][]byte{[]byte(s.data)},
			})
		}
		// The same stream split in three (at character boundaries: see the
		// UTF-8 deviation in doc.go): state survives the splits.
		d := []byte(s.data)
		if len(d) >= 3 {
			a, b := runeStart(d, len(d)/3), runeStart(d, 2*len(d)/3)
			cases = append(cases, diffCase{
				name: s.name + "/split", rows: 10, cols: 40, sb: 20,
				chunks: [][]byte{d[:a], d[a:b], d[b:]},
			})
		}
	}
	return cases
}

func TestXtermSynthetic(t *testing.T) {
	r := startRenderer(t)
	cases := syntheticCases()
	failed := checkCases(t, r, cases, false)
	t.Logf("%d of %d synthetic cases match xterm.js", len(cases)-failed, len(cases))
}

// runeStart moves i back to the start of the UTF-8 sequence it is in.
func runeStart(d []byte, i int) int {
	for k := 0; k < 3 && i > 0 && d[i]&0xc0 == 0x80; k++ {
		i--
	}
	return i
}
