package reconnectingpty

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestCIInstallsEveryProgramTheTestsRun reads every Go file of the
// repository for the programs the suite executes (exec.Command and
// LookPath with a literal name, a fidelity case's needs, and the commands
// of session inits, which run through the shell) and fails for each one
// that .ci/programs does not list: .ci/run installs the package of every
// listed program that is missing, so a fresh machine runs the suite with
// nothing installed by hand.
func TestCIInstallsEveryProgramTheTestsRun(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(file)
	listed := readCIPrograms(t, filepath.Join(root, ".ci", "programs"))

	used := map[string][]string{} // program -> where
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata":
				return filepath.SkipDir
			}
			// The recorder regenerates the xterm.js recordings by hand
			// (internal/xtermjs/record); no test runs it.
			if rel == filepath.Join("internal", "xtermjs", "record") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		for _, u := range programsExecutedBy(t, p) {
			used[u.program] = append(used[u.program], rel+":"+strconv.Itoa(u.line))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk the repository: %v", err)
	}
	if len(used) < 10 {
		t.Fatalf("found only %d programs (%v): the scan is broken", len(used), used)
	}
	var names []string
	for name := range used {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if why, ok := notPrograms[name]; ok {
			t.Logf("%s is not checked: %s", name, why)
			continue
		}
		if _, ok := listed[name]; !ok {
			t.Errorf("the tests run %s (%s) but .ci/programs does not list it, so .ci/run would not install it",
				name, strings.Join(used[name], ", "))
		}
	}
	t.Logf("programs the tests run: %s", strings.Join(names, " "))
}

// TestProgramScanFindsWhatATestRuns pins the scanner on a file of known
// uses, so a scan that silently finds nothing cannot pass the test above.
func TestProgramScanFindsWhatATestRuns(t *testing.T) {
	src := `package p
func f() {
	exec.Command("/usr/bin/alpha", "x")
	exec.CommandContext(ctx, "beta")
	exec.LookPath("gamma")
	exec.Command("/bin/sh", "-c", "delta -x | epsilon; FOO=1 exec zeta")
	requireProgram(t, "eta")
	_ = Init{Command: "stty raw -echo; echo hi; read x; theta " + n}
	_ = fidelityCase{needs: "iota"}
	exec.Command(name)
}`
	p := filepath.Join(t.TempDir(), "x_test.go")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range programsExecutedBy(t, p) {
		got = append(got, u.program)
	}
	sort.Strings(got)
	want := "alpha beta delta epsilon eta gamma iota sh stty theta zeta"
	if strings.Join(got, " ") != want {
		t.Errorf("scan found %q, want %q", strings.Join(got, " "), want)
	}
}

func readCIPrograms(t *testing.T, name string) map[string]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatalf("read the list .ci/run installs from: %v", err)
	}
	defer f.Close()
	listed := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 2 || fields[0] == "" || fields[1] == "" {
			t.Fatalf(".ci/programs: %q is not \"program<TAB>package\"", line)
		}
		listed[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return listed
}

// notPrograms are names the scan finds that the suite does not need
// installed, each with the reason.
var notPrograms = map[string]string{
	"go":      "the toolchain running the suite",
	"ignored": "screen_test.go's Command for a live session, which the server ignores",
}

type programUse struct {
	program string
	line    int
}

// programsExecutedBy lists the programs that one Go file runs by a literal
// name.
func programsExecutedBy(t *testing.T, file string) []programUse {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	var uses []programUse
	add := func(pos token.Pos, names ...string) {
		for _, n := range names {
			uses = append(uses, programUse{n, fset.Position(pos).Line})
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			args := n.Args
			switch callName(n.Fun) {
			case "exec.CommandContext":
				if len(args) == 0 {
					return true
				}
				args = args[1:]
				fallthrough
			case "exec.Command":
				prog, ok := leadingString(args)
				if !ok {
					return true
				}
				prog = path.Base(prog)
				add(n.Pos(), prog)
				if (prog == "sh" || prog == "bash") && len(args) >= 3 {
					if flag, _ := leadingString(args[1:2]); flag == "-c" {
						if line, ok := leadingString(args[2:3]); ok {
							add(n.Pos(), shellPrograms(line)...)
						}
					}
				}
			case "exec.LookPath", "requireProgram":
				if len(args) > 0 && callName(n.Fun) == "requireProgram" {
					args = args[1:]
				}
				if prog, ok := leadingString(args); ok && prog != "" {
					add(n.Pos(), path.Base(prog))
				}
			}
		case *ast.KeyValueExpr:
			key, ok := n.Key.(*ast.Ident)
			if !ok {
				return true
			}
			switch key.Name {
			case "needs":
				if prog, ok := leadingString([]ast.Expr{n.Value}); ok && prog != "" {
					add(n.Pos(), prog)
				}
			case "Command":
				if line, ok := leadingString([]ast.Expr{n.Value}); ok {
					add(n.Pos(), shellPrograms(line)...)
				}
			}
		}
		return true
	})
	return uses
}

func callName(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok {
			return x.Name + "." + f.Sel.Name
		}
	}
	return ""
}

// leadingString is the string literal that args[0] is or starts with (a
// literal concatenated with something else still names the program).
func leadingString(args []ast.Expr) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	e := args[0]
	for {
		b, ok := e.(*ast.BinaryExpr)
		if !ok || b.Op != token.ADD {
			break
		}
		e = b.X
	}
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// shellBuiltins are words a command line runs without executing a program.
var shellBuiltins = map[string]bool{
	"echo": true, "printf": true, "read": true, "exit": true, "exec": true, "cd": true,
	"export": true, "set": true, "true": true, "false": true, "test": true, "[": true,
	"trap": true, "wait": true, "kill": true, "for": true, "do": true, "done": true,
	"while": true, "until": true, "if": true, "then": true, "fi": true, "else": true,
	"case": true, "esac": true, "shift": true, "return": true, "local": true,
	"eval": true, "ulimit": true, "umask": true, "command": true,
}

// shellPrograms lists the programs a shell command line runs: the first
// word of each simple command that is not a builtin or an assignment.
func shellPrograms(line string) []string {
	var out []string
	seps := strings.NewReplacer("&&", ";", "||", ";", "|", ";", "&", ";", "$(", ";", "(", ";", ")", ";", "`", ";", "\n", ";")
	for _, seg := range strings.Split(seps.Replace(line), ";") {
		for _, w := range strings.Fields(seg) {
			if strings.Contains(w, "=") || w == "exec" || w == "command" || w == "nohup" {
				continue
			}
			if shellBuiltins[w] {
				break
			}
			if c := w[0]; (c >= 'a' && c <= 'z') || c == '/' {
				out = append(out, path.Base(w))
			}
			break
		}
	}
	return out
}
