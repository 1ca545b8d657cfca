package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// The session programs are this binary itself, started with childArg, so
// that every contender runs exactly the same program and nothing but the
// bench needs to be installed for it.
const childArg = "__rptybench_child"

// lineLen is the length of every line the programs print, newline
// included, like `yes` printing a 71-character string.
const lineLen = 72

// line is the text the programs print: lowercase and digits only, so it can
// never contain a marker (markers are uppercase).
var line = func() []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 0, lineLen)
	for len(b) < lineLen-1 {
		b = append(b, alphabet[len(b)%len(alphabet)])
	}
	return append(b, '\n')
}()

// childCommand is the shell command that runs one of the programs.
func childCommand(self string, mode string, args ...string) string {
	s := "exec " + shellQuote(self) + " " + childArg + " " + mode
	for _, a := range args {
		s += " " + shellQuote(a)
	}
	return s
}

func shellQuote(s string) string {
	return "'" + string(bytes.ReplaceAll([]byte(s), []byte("'"), []byte(`'\''`))) + "'"
}

// runChild runs the program named by args when the binary was started as
// one, and then exits; otherwise it returns.
func runChild(args []string) {
	if len(args) < 3 || args[1] != childArg {
		return
	}
	var err error
	switch args[2] {
	case "writer":
		err = writerMain(args[3:])
	case "session":
		err = sessionMain(args[3:])
	case "daemon":
		err = daemonMain(args[3:])
	default:
		err = xerrors.Errorf("unknown program %q", args[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rptybench child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// writerMain is the throughput program: it waits for a first line of input
// (typed by the bench once a client is attached: dtach shows a client
// nothing printed before it attached), prints its ready marker, waits for
// a second line (the start signal, typed once every client is attached),
// prints size bytes of lines in yes-sized chunks, prints its end marker,
// and then waits for its terminal to go away, so that the marker stays on
// screen for a multiplexer to draw.
func writerMain(args []string) error {
	if len(args) != 3 {
		return xerrors.Errorf("writer: want size, ready and end markers, got %q", args)
	}
	size, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return xerrors.Errorf("writer size: %w", err)
	}
	in := make([]byte, 256)
	if _, err := os.Stdin.Read(in); err != nil {
		return xerrors.Errorf("wait for the first line: %w", err)
	}
	if _, err := fmt.Printf("%s\n", args[1]); err != nil {
		return xerrors.Errorf("print ready marker: %w", err)
	}
	if _, err := os.Stdin.Read(in); err != nil {
		return xerrors.Errorf("wait for the start line: %w", err)
	}
	// GNU yes fills an 8 KiB buffer with whole lines and writes it over
	// and over; so does this.
	chunk := bytes.Repeat(line, 8192/lineLen)
	for size > 0 {
		n := min(int64(len(chunk)), size)
		if _, err := os.Stdout.Write(chunk[:n]); err != nil {
			return xerrors.Errorf("write output: %w", err)
		}
		size -= n
	}
	if _, err := fmt.Printf("\n%s\n", args[2]); err != nil {
		return xerrors.Errorf("print end marker: %w", err)
	}
	waitHangup(in)
	return nil
}

// sessionMain is the program of the reattach and idle sessions: it prints
// size bytes of lines and its marker, then sits idle. Like a full-screen
// program it redraws its screen when it reads Ctrl-L, which is how dtach
// (which keeps no screen of its own) asks for a repaint on attach; so it
// reads its input a character at a time, without echo.
func sessionMain(args []string) error {
	if len(args) != 2 {
		return xerrors.Errorf("session: want size and marker, got %q", args)
	}
	size, err := strconv.Atoi(args[0])
	if err != nil {
		return xerrors.Errorf("session size: %w", err)
	}
	if err := rawInput(0); err != nil {
		return err
	}
	out := bytes.Repeat(line, size/lineLen+1)[:size]
	out = append(out, "\n"+args[1]...)
	if _, err := os.Stdout.Write(out); err != nil {
		return xerrors.Errorf("print output: %w", err)
	}
	repaint := append([]byte("\x1b[H\x1b[2J"), bytes.Repeat(line, 23)...)
	repaint = append(repaint, args[1]...)
	in := make([]byte, 256)
	for {
		n, err := os.Stdin.Read(in)
		if err != nil {
			return nil // hung up: the session is over
		}
		if bytes.IndexByte(in[:n], 0x0c) >= 0 {
			if _, err := os.Stdout.Write(repaint); err != nil {
				return nil
			}
		}
	}
}

// rawInput turns off line editing and echo on the terminal fd, leaving
// output processing alone.
func rawInput(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return xerrors.Errorf("get terminal attributes: %w", err)
	}
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return xerrors.Errorf("set terminal attributes: %w", err)
	}
	return nil
}

// waitHangup reads input until the terminal goes away.
func waitHangup(buf []byte) {
	for {
		if _, err := os.Stdin.Read(buf); err != nil {
			return
		}
	}
}
