package vt

import (
	"testing"
	"unsafe"
)

func TestCellIs16Bytes(t *testing.T) {
	// The parser writes and clears cells for every line of output; the
	// layout in cell.go exists to keep them this size.
	if n := unsafe.Sizeof(cell{}); n != 16 {
		t.Fatalf("a cell takes %d bytes, want 16", n)
	}
}
