package xtermjs

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/xerrors"
)

// Request is one byte stream to render in a fresh terminal.
type Request struct {
	Rows, Cols int
	// Scrollback is the normal buffer's scrollback line limit.
	Scrollback int
	// Chunks are written in order, each as one write() call, so their
	// boundaries split escape sequences and UTF-8 as a PTY read would.
	Chunks [][]byte
	// Resizes resize the terminal between chunks, in order of Before.
	Resizes []Resize
	// ScrollbackCells asks for State.ScrollbackCells.
	ScrollbackCells bool
}

// Resize is a terminal resize in the middle of a Request's stream.
type Resize struct {
	// Before is the index of the chunk the resize comes before (after
	// every earlier chunk is parsed); len(Chunks) resizes at the end.
	Before     int
	Cols, Rows int
}

// Renderer is a running render.js (Node) process. It serves one call at a
// time: calls from several goroutines are serialised, so a test that wants
// parallelism starts one Renderer per goroutine.
type Renderer struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *json.Decoder
	stderr *tailBuffer
	nextID int64
	broken error // set once the process is unusable
	closed bool
}

// ErrNotInstalled is wrapped by Start's error when node or the pinned npm
// packages are missing.
var ErrNotInstalled = xerrors.New("xterm.js renderer not installed: run npm ci in internal/xtermjs/testdata (needs node)")

// Dir returns the directory holding render.js and its package-lock.json.
func Dir() string {
	// The source directory, not the test binary's: tests of other packages
	// use the renderer too.
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("internal", "xtermjs", "testdata")
	}
	return filepath.Join(filepath.Dir(file), "testdata")
}

// Start starts render.js. ctx bounds the start only; Close ends the process.
func Start(ctx context.Context) (*Renderer, error) {
	return start(ctx, Dir())
}

func start(ctx context.Context, dir string) (*Renderer, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, xerrors.Errorf("find node (%v): %w", err, ErrNotInstalled)
	}
	for _, pkg := range []string{"@xterm/headless", "@xterm/addon-unicode11"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			return nil, xerrors.Errorf("find %s (%v): %w", pkg, err, ErrNotInstalled)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("start xterm.js renderer: %w", err)
	}
	cmd := exec.Command(node, filepath.Join(dir, "render.js"))
	cmd.Dir = dir
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, xerrors.Errorf("xterm.js renderer stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, xerrors.Errorf("xterm.js renderer stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, xerrors.Errorf("start %s render.js: %w", node, err)
	}
	return &Renderer{
		cmd:    cmd,
		stdin:  stdin,
		out:    json.NewDecoder(bufio.NewReaderSize(stdout, 1<<20)),
		stderr: stderr,
	}, nil
}

// Render renders one stream.
func (r *Renderer) Render(ctx context.Context, req Request) (State, error) {
	states, err := r.RenderBatch(ctx, []Request{req})
	if err != nil {
		return State{}, err
	}
	return states[0], nil
}

type wireRequest struct {
	ID         int64        `json:"id"`
	Rows       int          `json:"rows"`
	Cols       int          `json:"cols"`
	Scrollback int          `json:"scrollback"`
	Chunks     [][]byte     `json:"chunks"` // base64, as encoding/json writes []byte
	Resizes    []wireResize `json:"resizes,omitempty"`
	// ScrollbackCells asks for the scrollback's cells.
	ScrollbackCells bool `json:"scrollbackCells,omitempty"`
}

type wireResize struct {
	Before int `json:"before"`
	Cols   int `json:"cols"`
	Rows   int `json:"rows"`
}

type wireAnswer struct {
	ID    int64  `json:"id"`
	State *State `json:"state"`
	Error string `json:"error"`
}

// RenderBatch renders many streams, pipelined: the requests are written
// while the answers are read, and render.js works on several at once.
// The states are in the order of reqs.
func (r *Renderer) RenderBatch(ctx context.Context, reqs []Request) ([]State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, xerrors.New("render with xterm.js: renderer closed")
	}
	if r.broken != nil {
		return nil, xerrors.Errorf("render with xterm.js: renderer unusable: %w", r.broken)
	}
	for i, q := range reqs {
		if q.Rows < 1 || q.Cols < 2 || q.Scrollback < 0 {
			return nil, xerrors.Errorf("render request %d: bad size %dx%d scrollback %d", i, q.Cols, q.Rows, q.Scrollback)
		}
		for j, rz := range q.Resizes {
			if rz.Rows < 1 || rz.Cols < 2 || rz.Before < 0 || rz.Before > len(q.Chunks) || (j > 0 && rz.Before < q.Resizes[j-1].Before) {
				return nil, xerrors.Errorf("render request %d: bad resize %d: %+v", i, j, rz)
			}
		}
	}
	first := r.nextID
	r.nextID += int64(len(reqs))

	// A cancelled ctx kills node: nothing else unblocks the reads. The
	// renderer is unusable afterwards.
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killed)
		_ = r.cmd.Process.Kill()
	})
	defer func() {
		if !stop() {
			<-killed
		}
	}()

	writeErr := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(r.stdin, 1<<16)
		enc := json.NewEncoder(w)
		for i, q := range reqs {
			wr := wireRequest{ID: first + int64(i), Rows: q.Rows, Cols: q.Cols, Scrollback: q.Scrollback, Chunks: q.Chunks,
				ScrollbackCells: q.ScrollbackCells}
			for _, rz := range q.Resizes {
				wr.Resizes = append(wr.Resizes, wireResize(rz))
			}
			if err := enc.Encode(wr); err != nil {
				writeErr <- xerrors.Errorf("send render request %d: %w", i, err)
				return
			}
		}
		if err := w.Flush(); err != nil {
			writeErr <- xerrors.Errorf("send render requests: %w", err)
			return
		}
		writeErr <- nil
	}()

	states := make([]State, len(reqs))
	var readErr error
	for i := range reqs {
		var a wireAnswer
		a.State = &states[i]
		if err := r.out.Decode(&a); err != nil {
			readErr = xerrors.Errorf("read xterm.js answer %d of %d: %w%s", i, len(reqs), err, r.stderrNote())
			break
		}
		if a.Error != "" {
			// The process is fine; only this request failed. Read the rest
			// so the next call starts in step.
			if readErr == nil {
				readErr = xerrors.Errorf("xterm.js failed on request %d: %s", i, a.Error)
			}
			continue
		}
		if a.ID != first+int64(i) {
			readErr = xerrors.Errorf("xterm.js answer out of order: got id %d, want %d", a.ID, first+int64(i))
			r.broken = readErr
			break
		}
	}
	if readErr != nil && r.broken == nil && ctx.Err() == nil {
		var se *json.SyntaxError
		if xerrors.As(readErr, &se) || xerrors.Is(readErr, io.EOF) || xerrors.Is(readErr, io.ErrUnexpectedEOF) {
			r.broken = readErr
		}
	}
	if ctx.Err() != nil {
		r.broken = xerrors.Errorf("render cancelled: %w", ctx.Err())
	}
	if r.broken != nil {
		// The writer may be blocked on a pipe nobody reads any more.
		_ = r.cmd.Process.Kill()
	}
	if err := <-writeErr; err != nil && readErr == nil {
		readErr = err
		r.broken = err
	}
	if ctx.Err() != nil {
		return nil, xerrors.Errorf("render with xterm.js: %w", ctx.Err())
	}
	if readErr != nil {
		return nil, readErr
	}
	return states, nil
}

func (r *Renderer) stderrNote() string {
	if s := r.stderr.String(); s != "" {
		return "; node stderr: " + s
	}
	return ""
}

// Close ends node and waits for it.
func (r *Renderer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	_ = r.stdin.Close() // render.js exits at the end of its input
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		_ = r.cmd.Process.Kill()
		err = <-done
	}
	if err != nil && r.broken == nil {
		return xerrors.Errorf("wait for xterm.js renderer: %w%s", err, r.stderrNote())
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it (node's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
