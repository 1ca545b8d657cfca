package xtermjs

import (
	"bytes"
	"encoding/json"
	"strconv"

	"golang.org/x/xerrors"
)

// MarshalJSON writes c in the array form [chars, width, fg, bg, flags,
// underline, link, underline colour].
func (c Cell) MarshalJSON() ([]byte, error) {
	chars, err := json.Marshal(c.Chars)
	if err != nil {
		return nil, xerrors.Errorf("marshal cell chars: %w", err)
	}
	b := make([]byte, 0, len(chars)+32)
	b = append(b, '[')
	b = append(b, chars...)
	for _, n := range [...]int64{int64(c.Width), int64(c.FG), int64(c.BG), int64(c.Flags), int64(c.Underline), int64(c.Link),
		int64(c.UnderlineColor)} {
		b = append(b, ',')
		b = strconv.AppendInt(b, n, 10)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads the array form written by MarshalJSON and render.js.
// It is hand-rolled because a screen is thousands of cells and the generic
// decoding of a mixed array costs several allocations each.
func (c *Cell) UnmarshalJSON(data []byte) error {
	d := bytes.TrimSpace(data)
	if len(d) < 2 || d[0] != '[' || d[len(d)-1] != ']' {
		return xerrors.Errorf("cell %q: not an array", data)
	}
	d = bytes.TrimSpace(d[1 : len(d)-1])
	if len(d) == 0 || d[0] != '"' {
		return xerrors.Errorf("cell %q: chars is not a string", data)
	}
	end, escaped := stringEnd(d)
	if end < 0 {
		return xerrors.Errorf("cell %q: unterminated chars", data)
	}
	if escaped {
		if err := json.Unmarshal(d[:end+1], &c.Chars); err != nil {
			return xerrors.Errorf("cell %q: decode chars: %w", data, err)
		}
	} else {
		c.Chars = string(d[1:end])
	}
	rest := d[end+1:]
	var nums [7]int64
	for i := range nums {
		rest = bytes.TrimSpace(rest)
		if len(rest) == 0 || rest[0] != ',' {
			return xerrors.Errorf("cell %q: want 8 elements", data)
		}
		rest = bytes.TrimSpace(rest[1:])
		j := bytes.IndexByte(rest, ',')
		if j < 0 {
			j = len(rest)
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(rest[:j])), 10, 64)
		if err != nil {
			return xerrors.Errorf("cell %q: element %d: %w", data, i+1, err)
		}
		nums[i] = n
		rest = rest[j:]
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return xerrors.Errorf("cell %q: want 8 elements", data)
	}
	c.Width = int(nums[0])
	c.FG = int32(nums[1])
	c.BG = int32(nums[2])
	c.Flags = uint16(nums[3])
	c.Underline = uint8(nums[4])
	c.Link = int(nums[5])
	c.UnderlineColor = int32(nums[6])
	return nil
}

// stringEnd returns the index of the closing quote of the JSON string that
// d starts with, and whether the string holds escapes.
func stringEnd(d []byte) (int, bool) {
	escaped := false
	for i := 1; i < len(d); i++ {
		switch d[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return -1, escaped
}
