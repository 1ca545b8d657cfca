package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/xerrors"
)

// bash is an interactive shell with no start-up files (PS1 comes from the
// environment).
var bash = []string{"/bin/bash", "--norc", "--noprofile", "-i"}

// scenarios are the recordings, in the order the README lists them.
func scenarios(self string) []scenario {
	return []scenario{
		{
			name:  "bash-ls",
			setup: lsTree,
			argv:  bash,
			steps: []step{
				keys("ls --color=always\r"),
				keys("ls -F --color=always project\r"),
				keys("ls -la --color=always project\r"),
				keys("ls --color=always many\r"),
				keys("ls -R --color=always project | head -40\r"),
				keys("ls --color=always -l many\r"),
				keys("echo done\r"),
			},
		},
		{
			name:  "less",
			setup: longFile,
			argv:  bash,
			steps: []step{
				keys("ls -l long.txt\r"), keys("less -R long.txt\r"),
				keys(" "), keys(" "), keys("b"), keys("jjjjj"), keys("k"),
				keys("/line 2[0-9]7\r"), keys("n"), keys("n"), keys("N"),
				keys("G"), keys("g"), keys("\x1b[6~"), keys("\x1bOB"),
			},
		},
		{
			name:  "vim",
			setup: pythonFile,
			argv:  bash,
			steps: []step{
				keys("vim -N -u NONE -i NONE -n -c 'syntax on' -c 'set number ruler laststatus=2 title titlestring=vim:\\ %t%m' sample.py\r"),
				keys("10j"), keys("dd"), keys("o        # an inserted line\x1b"),
				keys("/def \r"), keys("n"), keys("cwrenamed\x1b"),
				keys(":%s/self/this/g\r"), keys("\x06"), keys("\x02"),
				keys("u"), keys("yyp"), keys("A  # trailing text\x1b"),
				keys("5G"), keys("3x"), keys("ihello \x1b"),
				keys(":set nonumber\r"), keys("G"),
			},
		},
		{
			name: "top",
			argv: bash,
			steps: []step{
				keys("sleep 600 &\r"), keys("top -d 1 -p $!,$$\r"),
				pause(3200 * time.Millisecond), keys("c"), pause(1200 * time.Millisecond),
				keys("q"),
			},
		},
		{
			name: "htop",
			argv: bash,
			steps: []step{
				keys("sleep 600 &\r"), keys("htop -d 10 -p $!,$$\r"),
				pause(2500 * time.Millisecond), keys("t"), pause(1500 * time.Millisecond),
				keys("M"), pause(1200 * time.Millisecond), keys("\x1b[B"), pause(1200 * time.Millisecond),
			},
		},
		{
			name:  "git-log",
			setup: gitRepo,
			argv:  bash,
			steps: []step{
				keys("git log --graph --color=always --oneline --decorate --all\r"),
				keys("git log --graph --color=always --decorate -4 main\r"),
				keys("git log --graph --color=always --stat --decorate -3 feature\r"),
				keys("git log --graph --color=always --pretty='%C(yellow)%h%Creset %C(auto)%d%Creset %s %C(blue)<%an>%Creset' --all\r"),
			},
		},
		{name: "utf8", argv: []string{self, "-emit", "utf8"}},
		{name: "scroll-region", argv: []string{self, "-emit", "scroll-region"}},
		{name: "modes", argv: []string{self, "-emit", "modes"}},
	}
}

func writeFiles(dir string, files map[string]string) error {
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return xerrors.Errorf("mkdir for %s: %w", name, err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return xerrors.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// lsTree makes files of every kind ls colours differently.
func lsTree(dir string) error {
	files := map[string]string{
		"project/src/main.go":        "package main\n",
		"project/src/util.go":        "package main\n",
		"project/docs/README.md":     "# docs\n",
		"project/archive.tar.gz":     "",
		"project/photo.png":          "",
		"project/song.mp3":           "",
		"project/notes.txt":          "notes\n",
		"project/bin/run.sh":         "#!/bin/sh\n",
		"project/bin/build":          "#!/bin/sh\n",
		"project/.hidden":            "",
		"project/src/internal/a.go":  "package internal\n",
		"project/src/internal/b.go":  "package internal\n",
		"project/docs/img/logo.svg":  "",
		"project/docs/img/shot.jpeg": "",
	}
	for i := 0; i < 64; i++ {
		ext := []string{".txt", ".go", ".tar", ".jpg", ".log", ""}[i%6]
		files[fmt.Sprintf("many/file_%03d%s", i, ext)] = strings.Repeat("x", i)
	}
	if err := writeFiles(dir, files); err != nil {
		return err
	}
	for _, x := range []string{"project/bin/run.sh", "project/bin/build"} {
		if err := os.Chmod(filepath.Join(dir, x), 0o755); err != nil {
			return xerrors.Errorf("chmod %s: %w", x, err)
		}
	}
	for _, l := range [][2]string{{"src", "project/link-to-src"}, {"nowhere", "project/broken-link"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			return xerrors.Errorf("symlink %s: %w", l[1], err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "project/shared"), 0o777); err != nil {
		return xerrors.Errorf("mkdir shared: %w", err)
	}
	if err := os.Chmod(filepath.Join(dir, "project/shared"), 0o1777|os.ModeSticky); err != nil {
		return xerrors.Errorf("chmod shared: %w", err)
	}
	if err := exec.Command("mkfifo", filepath.Join(dir, "project/pipe")).Run(); err != nil {
		return xerrors.Errorf("mkfifo: %w", err)
	}
	return nil
}

// longFile is a 600-line file with long lines that wrap and SGR-coloured
// lines that less -R passes through.
func longFile(dir string) error {
	var b strings.Builder
	for i := 1; i <= 600; i++ {
		switch {
		case i%50 == 0:
			fmt.Fprintf(&b, "line %d: %s\n", i, strings.Repeat("a long line that wraps around the screen edge; ", 5))
		case i%7 == 0:
			fmt.Fprintf(&b, "line %d: \x1b[1;32mgreen bold\x1b[0m and \x1b[4;35munderlined magenta\x1b[0m text\n", i)
		case i%13 == 0:
			fmt.Fprintf(&b, "line %d: tabs\there\tand\tthere\n", i)
		default:
			fmt.Fprintf(&b, "line %d: the quick brown fox jumps over the lazy dog\n", i)
		}
	}
	return writeFiles(dir, map[string]string{"long.txt": b.String()})
}

// pythonFile is source for vim's syntax colours.
func pythonFile(dir string) error {
	var b strings.Builder
	b.WriteString("#!/usr/bin/env python3\n\"\"\"A sample module for the recording.\"\"\"\n\nimport os\nimport sys\n\n")
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "class Shape%d(object):\n    \"\"\"Shape number %d.\"\"\"\n\n", i, i)
		fmt.Fprintf(&b, "    def __init__(self, size=%d):\n        self.size = size  # the size\n        self.name = 'shape-%d'\n\n", i+1, i)
		fmt.Fprintf(&b, "    def area(self):\n        if self.size > %d:\n            return self.size * 3.14\n        return None\n\n", i)
		b.WriteString("    def describe(self):\n        print(f\"{self.name}: {self.area()}\", file=sys.stderr)\n\n\n")
	}
	b.WriteString("if __name__ == '__main__':\n    for s in (Shape0(), Shape1(2)):\n        s.describe()\n")
	return writeFiles(dir, map[string]string{"sample.py": b.String()})
}

// gitRepo makes a small repository with branches and merges, with fixed
// names and dates so the hashes are the same on every run.
func gitRepo(dir string) error {
	n := 0
	gitCmd := func(args ...string) error {
		n++
		date := fmt.Sprintf("2024-01-%02dT12:00:00Z", 1+n%28)
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = []string{
			"HOME=" + dir, "PATH=/usr/local/bin:/usr/bin:/bin",
			"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
			"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
			"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date,
			"GIT_CONFIG_NOSYSTEM=1",
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return xerrors.Errorf("git %v: %w: %s", args, err, out)
		}
		return nil
	}
	commit := func(file, msg string) error {
		f, err := os.OpenFile(filepath.Join(dir, file), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return xerrors.Errorf("open %s: %w", file, err)
		}
		_, err = fmt.Fprintf(f, "%s\n", msg)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return xerrors.Errorf("write %s: %w", file, err)
		}
		if err := gitCmd("add", file); err != nil {
			return err
		}
		return gitCmd("commit", "-q", "-m", msg)
	}
	steps := []func() error{
		func() error { return gitCmd("init", "-q", "-b", "main") },
		func() error { return commit("README", "Initial commit") },
		func() error { return commit("main.go", "Add main") },
		func() error { return gitCmd("checkout", "-q", "-b", "feature") },
		func() error { return commit("feature.go", "Start the feature") },
		func() error { return commit("feature.go", "Feature: handle the edge case") },
		func() error { return gitCmd("checkout", "-q", "main") },
		func() error { return commit("main.go", "Fix a typo in main") },
		func() error { return gitCmd("checkout", "-q", "-b", "bugfix") },
		func() error { return commit("bug.go", "Fix the crash on empty input") },
		func() error { return gitCmd("checkout", "-q", "main") },
		func() error { return gitCmd("merge", "-q", "--no-ff", "-m", "Merge branch 'bugfix'", "bugfix") },
		func() error { return commit("README", "Document the flags") },
		func() error { return gitCmd("checkout", "-q", "feature") },
		func() error { return commit("feature.go", "Feature: tests") },
		func() error { return gitCmd("checkout", "-q", "main") },
		func() error { return gitCmd("merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature") },
		func() error { return gitCmd("tag", "v1.0") },
		func() error { return commit("main.go", "Bump the version") },
		func() error { return gitCmd("checkout", "-q", "-b", "experiment", "HEAD~2") },
		func() error { return commit("exp.go", "Try a different approach") },
		func() error { return gitCmd("checkout", "-q", "main") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}
