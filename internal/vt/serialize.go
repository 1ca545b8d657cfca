package vt

// AppendSnapshot appends to dst a byte stream that reproduces the model.
func (t *Terminal) AppendSnapshot(dst []byte) []byte {
	return append(dst, "\x1bc"...)
}
