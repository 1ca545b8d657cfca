package rptytest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// outputMark matches a shell's output of `echo got-$((N+0))`: "got-N",
// which the typed command line itself (got-$((...) never contains.
var outputMark = regexp.MustCompile(`got-([0-9]+)`)

// CheckTypedOnce reports whether the outputs of the n lines
// `echo got-$((i+0))` (i from 1 to n) appear in lines once each and in
// order. A mark may follow other text on its line: keys typed while a
// command runs reach a terminal in cooked mode, whose line discipline
// echoes them there (readline echoes them again once it reads them), as in
// any terminal where a user types ahead.
func CheckTypedOnce(lines []string, n int) error {
	next := 1
	for _, l := range lines {
		for _, m := range outputMark.FindAllStringSubmatch(l, -1) {
			got, _ := strconv.Atoi(m[1])
			if got != next {
				return fmt.Errorf("got-%d where got-%d was due: input lost, doubled or reordered; buffer:\n%s",
					got, next, strings.Join(lines, "\n"))
			}
			next++
		}
	}
	if next != n+1 {
		return fmt.Errorf("%d of the %d lines reached the shell; buffer:\n%s", next-1, n, strings.Join(lines, "\n"))
	}
	return nil
}
