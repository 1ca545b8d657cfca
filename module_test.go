package reconnectingpty

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImportersInheritNoTestOrExampleModules builds a module that imports
// the library the way an agent would and checks what its module graph
// pulls in: the browser tests, the web bridge and the CLI live in the
// examples module, so none of their dependencies may reach an importer.
func TestImportersInheritNoTestOrExampleModules(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(file)
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/consumer\n\ngo 1.26.0\n\n"+
		"require github.com/reconnectingpty/reconnectingpty v0.0.0\n"+
		"replace github.com/reconnectingpty/reconnectingpty => "+root+"\n")
	write("main.go", "package main\n\nimport (\n"+
		"\t_ \"github.com/reconnectingpty/reconnectingpty\"\n"+
		"\t_ \"github.com/reconnectingpty/reconnectingpty/client\"\n)\n\nfunc main() {}\n")
	run := func(args ...string) string {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("mod", "tidy")
	graph := run("mod", "graph")
	for _, banned := range []string{"chromedp", "coder/websocket"} {
		if strings.Contains(graph, banned) {
			t.Errorf("an importer's module graph holds %s", banned)
		}
	}
	for _, edge := range strings.Split(graph, "\n") {
		from, to, _ := strings.Cut(edge, " ")
		if !strings.HasPrefix(from, "github.com/reconnectingpty/reconnectingpty@") {
			continue
		}
		mod, _, _ := strings.Cut(to, "@")
		if !allowedRequirement(mod) {
			t.Errorf("the library's go.mod requires %s: not a library dependency, nor one that they bring", mod)
		}
	}
}

// allowedRequirement lists the library's own dependencies and the modules
// those bring with them (which go mod tidy records as indirect).
func allowedRequirement(mod string) bool {
	switch mod {
	case "github.com/creack/pty", "github.com/google/uuid", "github.com/prometheus/client_golang",
		"cdr.dev/slog/v3", "golang.org/x/xerrors", "golang.org/x/sys", "go":
		return true
	}
	for _, prefix := range []string{
		"github.com/prometheus/", "github.com/beorn7/perks", "github.com/cespare/xxhash",
		"github.com/munnerz/goautoneg", "github.com/kylelemons/godebug", "google.golang.org/protobuf",
		"go.opentelemetry.io/otel", "golang.org/x/term",
	} {
		if strings.HasPrefix(mod, prefix) {
			return true
		}
	}
	return false
}
