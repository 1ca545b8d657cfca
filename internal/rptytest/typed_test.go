package rptytest

import "testing"

func TestCheckTypedOnce(t *testing.T) {
	// The page's buffer from a CI run: "ho" and " " of the third line were
	// typed while the second ran, and echoed by the line discipline.
	typedAhead := []string{
		"prompt> echo got-$((1+0))", "got-1",
		"prompt> echo got-$((2+0))", "hogot-2",
		" prompt> echo got-$((3+0))", "got-3",
		"prompt>",
	}
	if err := CheckTypedOnce(typedAhead, 3); err != nil {
		t.Errorf("typed-ahead echo refused: %v", err)
	}
	for name, lines := range map[string][]string{
		"doubled":   {"got-1", "got-2", "got-2", "got-3"},
		"lost":      {"got-1", "got-3"},
		"reordered": {"got-2", "got-1", "got-3"},
		"missing":   {"got-1", "got-2"},
		"extra":     {"got-1", "got-2", "got-3", "got-4"},
	} {
		if err := CheckTypedOnce(lines, 3); err == nil {
			t.Errorf("%s: %q accepted", name, lines)
		}
	}
}
