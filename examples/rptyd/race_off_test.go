//go:build !race

package main

// raceBuild is whether the tests run with the race detector, which slows
// the server down several times: timing bounds meant for the real thing do
// not hold then.
const raceBuild = false
