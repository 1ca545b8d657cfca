package vt

import (
	"reflect"
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

func TestCellHasAtMostFourFields(t *testing.T) {
	// Go keeps a struct of at most four fields in registers; a fifth makes
	// every cell copy go through the stack (see cell), which slowed the
	// snapshot by 7-18% when it happened.
	for _, typ := range []reflect.Type{reflect.TypeFor[cell](), reflect.TypeFor[cellTail]()} {
		if n := typ.NumField(); n > 4 {
			t.Errorf("%v has %d fields, want at most 4", typ, n)
		}
	}
}

func TestLineIs80Bytes(t *testing.T) {
	if s := unsafe.Sizeof(line{}); s != 80 {
		t.Fatalf("line is %d bytes, want 80 (a screen holds dozens per session)", s)
	}
}
