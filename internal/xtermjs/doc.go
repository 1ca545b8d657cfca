// Package xtermjs renders byte streams with real xterm.js (@xterm/headless,
// pinned in testdata/package-lock.json) for differential tests: the tests of
// internal/vt and of the server compare what they produce with what the
// terminal in our users' browsers shows.
//
// Start runs testdata/render.js under Node (run `npm ci` in testdata
// first; .ci/run does); Render and RenderBatch write streams into fresh
// terminals and return their State; Diff compares two States readably.
// A Renderer serves one caller at a time; a test starts it in TestMain or
// per test and closes it when done.
//
// Each terminal is a new headless Terminal with xterm.js's default options
// (allowProposedApi aside) and the unicode11 addon active, so character
// widths follow Unicode 11 as the web client's do when it loads that addon.
// Two defaults worth knowing when comparing: the cursor does not blink
// unless the stream asks (the rptyd web client sets cursorBlink: true), and
// reflowCursorLine is off, so a resize that narrows the screen truncates
// the cursor's line instead of reflowing it.
//
// LoadRecordings reads the recordings of real programs in
// internal/vt/testdata/recordings.
package xtermjs
