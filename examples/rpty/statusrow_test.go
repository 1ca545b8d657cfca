package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStatusLineLeavesAFullScreenProgramAsItWas: a full-screen program
// with text (in colour) on the last row, across a daemon upgrade that
// makes the CLI reconnect: the status line borrows the last row while the
// CLI is disconnected, and afterwards the pane is again exactly what the
// program drew, attributes and cursor included; the program's own saved
// cursor (DECSC) still restores where it saved it.
func TestStatusLineLeavesAFullScreenProgramAsItWas(t *testing.T) {
	cli := buildCLI(t)
	d := startRptyd(t, "--listen", "127.0.0.1:0", "--view-listen", "", "--http", "127.0.0.1:0", "--backend", "vt")
	addr := d.waitLogged("serving reconnecting pty", nil, 1)[0]["addr"].(string)
	httpAddr := d.waitLogged("serving http", nil, 1)[0]["addr"].(string)
	pane := startTmux(t, append([]string{cli, "--addr", addr, "--http", ""}, shellArgs...)...)
	connections := func() int { return onlySessionConnections(t, httpAddr) }
	styled := func() string { return pane.run("capture-pane", "-p", "-e") }
	cursor := func() string { return strings.TrimSpace(pane.run("display-message", "-p", "#{cursor_x},#{cursor_y}")) }

	pane.waitFor("the shell's prompt", func(s screen) bool { return strings.TrimSpace(strings.Join(s.rows, "")) != "" })
	// The alternate screen, the last row in red and plain, the cursor
	// saved at row 3, column 7, and left after "ready" on row 10.
	pane.typeIn(`printf '\033[?1049h\033[H\033[2J\033[24;1H\033[41mbottom-row\033[0m kept\033[3;7H\0337\033[10;10Hready'; read x; printf '\0338X'; sleep 600` + "\r")
	pane.waitFor("the full-screen program", func(s screen) bool {
		return len(s.rows) == 24 && strings.HasPrefix(s.rows[23], "bottom-row kept") && strings.Contains(s.rows[9], "ready")
	})
	before, beforeCursor := styled(), cursor()

	if err := d.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	d.waitLogged("reconnecting pty sessions restored", nil, 1)
	deadline := time.Now().Add(waitTimeout)
	for connections() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the CLI did not reconnect after the upgrade")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The reconnect drew the status line; once reconnected the pane is
	// what it was, cell for cell.
	deadline = time.Now().Add(waitTimeout)
	after, afterCursor := styled(), cursor()
	for (after != before || afterCursor != beforeCursor) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		after, afterCursor = styled(), cursor()
	}
	if after != before || afterCursor != beforeCursor {
		t.Fatalf("the pane changed across the reconnect: cursor %s, was %s; now:\n%q\nwas:\n%q", afterCursor, beforeCursor, after, before)
	}

	// The program's DECRC goes where its DECSC saved the cursor, not
	// where the status line was drawn from.
	pane.typeIn("\r")
	s := pane.waitFor("the X at the saved cursor", func(s screen) bool { return strings.Contains(strings.Join(s.rows, ""), "X") })
	if got := s.rows[2]; got != "      X" {
		t.Fatalf("DECRC put X elsewhere: row 3 is %q; pane:\n\t|%s", got, strings.Join(s.rows, "\n\t|"))
	}
}
