package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// The protocol has no way to list or close sessions, by design: the
// library leaves that to its embedder. rpty ls and rpty kill therefore ask
// the daemon's HTTP API (GET /sessions, DELETE /sessions/{id}), which
// examples/rptyd serves next to its web terminal.
const defaultHTTP = "127.0.0.1:8080"

// manageUsage is the help text of ls and kill; %[1]s is how the user ran
// this program (selfCommand).
const manageUsage = `Usage:
  %[1]s ls [--http 127.0.0.1:8080]
  %[1]s kill [--http 127.0.0.1:8080] ID

ls lists the daemon's live sessions; kill ends one (its processes are
killed and every attached client gets EOF). Both use the daemon's HTTP API.

Flags:
`

// sessionEntry is what rpty reads of one entry of GET /sessions.
type sessionEntry struct {
	ID          string  `json:"id"`
	Backend     string  `json:"backend"`
	Command     string  `json:"command"`
	PID         int     `json:"pid"`
	Connections int     `json:"connections"`
	ReadOnly    int     `json:"read_only"`
	Height      int     `json:"height"`
	Width       int     `json:"width"`
	Title       string  `json:"title"`
	AgeSeconds  float64 `json:"age_seconds"`
	IdleSeconds float64 `json:"idle_seconds"`
}

// runManage runs "ls" or "kill"; it returns the exit status.
func runManage(verb string, args []string) int {
	fs := flag.NewFlagSet("rpty "+verb, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	httpAddr := fs.String("http", defaultHTTP, "the daemon's HTTP address (host:port)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), manageUsage, selfCommand(os.Args[0]))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	api := &sessionsClient{base: "http://" + *httpAddr}
	switch verb {
	case "ls":
		if fs.NArg() != 0 {
			fs.Usage()
			return 2
		}
		list, err := api.list(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rpty ls: %v\n", err)
			return 1
		}
		printSessions(os.Stdout, list)
		return 0
	default: // kill
		if fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		id, err := uuid.Parse(fs.Arg(0))
		if err != nil {
			fmt.Fprintf(os.Stderr, "rpty kill: %q: %v\n", fs.Arg(0), err)
			return 2
		}
		if err := api.kill(ctx, id); err != nil {
			fmt.Fprintf(os.Stderr, "rpty kill: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stdout, "closed %s\n", id)
		return 0
	}
}

// sessionsClient speaks the daemon's session API.
type sessionsClient struct{ base string }

var errNoSuchSession = errors.New("no such session")

func (a *sessionsClient) list(ctx context.Context) ([]sessionEntry, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/sessions", nil)
	if err != nil {
		return nil, xerrors.Errorf("list sessions: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, xerrors.Errorf("list sessions: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, xerrors.Errorf("list sessions: %s", responseError(res))
	}
	var list []sessionEntry
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		return nil, xerrors.Errorf("list sessions: decode: %w", err)
	}
	return list, nil
}

func (a *sessionsClient) kill(ctx context.Context, id uuid.UUID) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, a.base+"/sessions/"+id.String(), nil)
	if err != nil {
		return xerrors.Errorf("close session %s: %w", id, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return xerrors.Errorf("close session %s: %w", id, err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusNotFound:
		return xerrors.Errorf("close session %s: %w", id, errNoSuchSession)
	}
	return xerrors.Errorf("close session %s: %s", id, responseError(res))
}

func responseError(res *http.Response) string {
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if msg := strings.TrimSpace(string(body)); msg != "" {
		return res.Status + ": " + msg
	}
	return res.Status
}

// printSessions writes the list as an aligned table.
func printSessions(w io.Writer, list []sessionEntry) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no live sessions")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBACKEND\tCLIENTS\tSIZE\tAGE\tIDLE\tCOMMAND")
	for _, s := range list {
		clients := fmt.Sprint(s.Connections)
		if s.ReadOnly > 0 {
			clients += fmt.Sprintf(" (%d viewing)", s.ReadOnly)
		}
		command := s.Command
		if command == "" {
			command = "(login shell)"
		}
		if s.Title != "" {
			command += " — " + s.Title
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%dx%d\t%s\t%s\t%s\n", s.ID, s.Backend, clients, s.Width, s.Height,
			shortDuration(s.AgeSeconds), shortDuration(s.IdleSeconds), command)
	}
	_ = tw.Flush()
}

func shortDuration(seconds float64) string {
	d := time.Duration(seconds) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// checkSessionExists asks the daemon's HTTP API whether the session is
// live, so that --view on a wrong ID fails at once instead of retrying: a
// viewer of no session is ended before any output, which the client takes
// for a dropped connection. An unreachable API skips the check.
func checkSessionExists(httpAddr string, id uuid.UUID) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := (&sessionsClient{base: "http://" + httpAddr}).list(ctx)
	if err != nil {
		return 0
	}
	for _, s := range list {
		if s.ID == id.String() {
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "rpty: no live session %s (rpty ls --http %s lists them)\n", id, httpAddr)
	return 1
}
