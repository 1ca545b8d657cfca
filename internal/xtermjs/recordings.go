package xtermjs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/xerrors"
)

// Recording is the output of a real program recorded on a PTY (see
// internal/vt/testdata/recordings/README.md).
type Recording struct {
	// Name is the program's name, e.g. "vim"; File the .raw file's base name.
	Name, File string
	Cols, Rows int
	// Chunks are the PTY reads, in order, with their boundaries.
	Chunks [][]byte
}

// Bytes returns the whole recording.
func (r Recording) Bytes() []byte { return bytes.Join(r.Chunks, nil) }

// Request renders the recording at its own size, chunk by chunk.
func (r Recording) Request(scrollback int) Request {
	return Request{Rows: r.Rows, Cols: r.Cols, Scrollback: scrollback, Chunks: r.Chunks}
}

// RecordingsDir returns internal/vt/testdata/recordings in the source tree.
func RecordingsDir() string {
	return filepath.Join(Dir(), "..", "..", "vt", "testdata", "recordings")
}

// LoadRecordings reads every NAME.WxH.raw in RecordingsDir, split at the
// reads listed in its NAME.WxH.chunks, sorted by file name.
func LoadRecordings() ([]Recording, error) {
	dir := RecordingsDir()
	raws, err := filepath.Glob(filepath.Join(dir, "*.raw"))
	if err != nil {
		return nil, xerrors.Errorf("list recordings: %w", err)
	}
	if len(raws) == 0 {
		return nil, xerrors.Errorf("no recordings in %s", dir)
	}
	sort.Strings(raws)
	out := make([]Recording, 0, len(raws))
	for _, p := range raws {
		r, err := loadRecording(p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func loadRecording(path string) (Recording, error) {
	base := strings.TrimSuffix(filepath.Base(path), ".raw")
	name, size, ok := strings.Cut(base, ".")
	w, h, ok2 := strings.Cut(size, "x")
	cols, err1 := strconv.Atoi(w)
	rows, err2 := strconv.Atoi(h)
	if !ok || !ok2 || err1 != nil || err2 != nil {
		return Recording{}, xerrors.Errorf("recording %s: name is not NAME.COLSxROWS.raw", path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return Recording{}, xerrors.Errorf("read recording: %w", err)
	}
	sizes, err := os.ReadFile(strings.TrimSuffix(path, ".raw") + ".chunks")
	if err != nil {
		return Recording{}, xerrors.Errorf("read chunk sizes: %w", err)
	}
	r := Recording{Name: name, File: filepath.Base(path), Cols: cols, Rows: rows}
	off := 0
	for i, f := range strings.Fields(string(sizes)) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || off+n > len(raw) {
			return Recording{}, xerrors.Errorf("recording %s: bad chunk size %q at line %d", base, f, i+1)
		}
		r.Chunks = append(r.Chunks, raw[off:off+n])
		off += n
	}
	if off != len(raw) {
		return Recording{}, xerrors.Errorf("recording %s: chunks cover %d of %d bytes", base, off, len(raw))
	}
	return r, nil
}

// String names the recording, e.g. "vim.80x24".
func (r Recording) String() string { return fmt.Sprintf("%s.%dx%d", r.Name, r.Cols, r.Rows) }
