package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// emit runs one of the sample programs that exercise what no common
// program shows reliably: wide characters at the wrap column, scroll
// regions, modes. Each writes to its PTY with pauses, as a program would.
func emit(name string) error {
	ws, err := unix.IoctlGetWinsize(1, unix.TIOCGWINSZ)
	if err != nil {
		return xerrors.Errorf("get the terminal size: %w", err)
	}
	e := &emitter{cols: int(ws.Col), rows: int(ws.Row)}
	switch name {
	case "utf8":
		e.utf8()
	case "scroll-region":
		e.scrollRegion()
	case "modes":
		e.modes()
	default:
		return xerrors.Errorf("no sample program %q", name)
	}
	return e.err
}

type emitter struct {
	cols, rows int
	err        error
}

func (e *emitter) out(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(os.Stdout, format, args...)
}

// slowly writes s a byte at a time with pauses, so the PTY reads split
// UTF-8 and escape sequences.
func (e *emitter) slowly(s string) {
	for i := 0; i < len(s) && e.err == nil; i++ {
		_, e.err = os.Stdout.Write([]byte{s[i]})
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *emitter) pause() { time.Sleep(50 * time.Millisecond) }

func (e *emitter) utf8() {
	e.out("\x1b[1mWide and combining characters\x1b[0m\r\n")
	e.out("CJK: 日本語のテキスト、中文字符、한국어 텍스트\r\n")
	e.out("Emoji: 😀 🎉 👍 🚀 ❤️ 👍🏽 🇯🇵 👨\u200d👩\u200d👧\r\n")
	e.out("Combining: e\u0301 a\u0308 n\u0303 o\u0302\u0323 Z\u0351\u0352\u0353 q\u0307\u0327\r\n")
	e.out("Scripts: ไทย ภาษา  हिन्दी  العربية  עברית  Ελληνικά  Русский\r\n")
	e.out("Fullwidth: ＡＢＣ１２３ and halfwidth: ｱｲｳｴｵ\r\n")
	e.pause()
	// A wide character whose first half would land in the last column
	// (it wraps, leaving that column empty), and one that fills the last
	// two columns exactly.
	for k := 1; k <= 3; k++ {
		e.out("%s\x1b[3%dm中文字\x1b[0m\r\n", strings.Repeat(".", e.cols-k), k)
		e.pause()
	}
	// A combining mark arriving while the cursor waits at the right
	// margin (it joins the last character), and one after a wide
	// character at the margin.
	e.out("%se\u0301 and more\r\n", strings.Repeat("-", e.cols-1))
	e.out("%s字\u0308 and more\r\n", strings.Repeat("+", e.cols-2))
	// Wide characters filling whole lines, odd and even offsets.
	e.out("%s\r\n", strings.Repeat("漢", e.cols/2+3))
	e.out(" %s\r\n", strings.Repeat("字", e.cols/2+3))
	e.pause()
	// The same text again a byte at a time: reads split UTF-8 sequences.
	e.slowly("Split: 日本語 e\u0301 😀 \x1b[7m反転\x1b[0m done\r\n")
	e.slowly(strings.Repeat("#", e.cols-1) + "語\r\n")
	// Wide characters overwritten by narrow ones and the reverse.
	e.out("中文中文中文\r\x1b[1Cx\x1b[2Cyy\r\n")
	e.out("abcdef\r\x1b[1C中\x1b[1C文\r\n")
	e.out("\x1b[4mend of sample\x1b[0m\r\n")
}

func (e *emitter) scrollRegion() {
	top, bottom := 3, e.rows-2
	e.out("\x1b[H\x1b[2J")
	e.out("\x1b[1;1H\x1b[7m%-*s\x1b[0m", e.cols, " status line: scroll-region demo")
	e.out("\x1b[%d;1H\x1b[7m%-*s\x1b[0m", e.rows, e.cols, " footer: the region is rows 3.."+fmt.Sprint(bottom))
	e.out("\x1b[%d;%dr", top, bottom)
	e.out("\x1b[%d;1H", top)
	for i := 1; i <= 3*(bottom-top+1); i++ {
		e.out("region line %d \x1b[3%dmcoloured\x1b[0m\r\n", i, i%8)
		if i%10 == 0 {
			e.pause()
		}
	}
	// Reverse index at the top of the region scrolls it down.
	e.out("\x1b[%d;1H\x1bM\x1bMinserted by RI twice", top)
	e.pause()
	// SU and SD, IL and DL inside the region.
	e.out("\x1b[2S\x1b[1T")
	e.out("\x1b[%d;1H\x1b[2Lnew line from IL\x1b[%d;1H\x1b[1M", top+4, top+8)
	e.pause()
	// Origin mode: CUP is relative to the region.
	e.out("\x1b[?6h\x1b[1;1Hat the region's origin\x1b[2;5Hrow 2 col 5 of the region\x1b[?6l")
	// DECSC/DECRC around a write to the status line.
	e.out("\x1b7\x1b[1;40H\x1b[7m saved+restored \x1b[0m\x1b8")
	e.pause()
	// A narrower region in the middle, scrolled with LF and RI.
	mid := top + (bottom-top)/2
	e.out("\x1b[%d;%dr\x1b[%d;1H", mid-2, mid+2, mid+2)
	for i := 1; i <= 8; i++ {
		e.out("\n\rsmall region %d", i)
	}
	e.out("\x1b[%d;1H\x1bM\x1bMreverse", mid-2)
	e.pause()
	// Back to the big region; the program leaves it set, with the cursor
	// inside, as a full-screen program does while it runs.
	e.out("\x1b[%d;%dr\x1b[%d;1H", top, bottom, bottom)
	e.out("\r\nlast line in the region\r\n\x1b[1;34mpen left blue")
}

func (e *emitter) modes() {
	e.out("\x1b]0;modes demo (icon and title)\x07")
	e.out("Mouse tracking 1000 (vt200)\r\n\x1b[?1000h")
	e.pause()
	e.out("Mouse tracking 1002 (button drag)\r\n\x1b[?1002h")
	e.pause()
	e.out("Mouse tracking 1003 (any motion) with SGR encoding 1006\r\n\x1b[?1003h\x1b[?1006h")
	e.pause()
	e.out("Bracketed paste on\r\n\x1b[?2004h")
	e.out("Focus reporting on\r\n\x1b[?1004h")
	e.out("Application cursor keys and keypad\r\n\x1b[?1h\x1b=")
	e.out("\x1b]2;modes demo: title\x1b\\")
	e.pause()
	e.out("Cursor: blinking underline, then hidden\r\n\x1b[3 q\x1b[?25l")
	// DEC line drawing through G0, then through G1 with SO/SI.
	e.out("\x1b(0lqqqqk\x1b(B box top\r\n\x1b(0x    x\x1b(B\r\n\x1b(0mqqqqj\x1b(B\r\n")
	e.out("\x1b)0\x0elqk\x0f via G1\r\n")
	// Custom tab stops.
	e.out("\x1b[3g\x1b[1;5H\x1bH\x1b[1;13H\x1bH\x1b[1;31H\x1bH\x1b[12;1H")
	e.out("a\tb\tc\td\r\n")
	e.out("Saved cursor at row 14 col 20\x1b[14;20H\x1b7\x1b[15;1H")
	e.out("\x1b[4:3;38;2;255;128;0mcurly orange\x1b[0m \x1b[9;2;3mstrike dim italic\x1b[0m\r\n")
	// Leaves the modes on, as a program that uses them does while it runs,
	// and a pen that is not the default.
	e.out("The modes stay on.\r\n\x1b[1;33;44m")
}
