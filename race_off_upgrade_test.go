//go:build !race

package reconnectingpty_test

// raceBuild is whether the tests run with the race detector: the daemon
// they build for the upgrade tests is built the same way.
const raceBuild = false
