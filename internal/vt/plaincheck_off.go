//go:build !vtcheck

package vt

// checkPlain turns on checkPlainLine (build with -tags vtcheck).
const checkPlain = false

func checkPlainLine(*line) {}
