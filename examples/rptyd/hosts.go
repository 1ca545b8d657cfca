package main

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// hostGuard refuses, with 403 before anything else runs, a request whose
// Host is not a name the daemon serves, or whose Origin is not that host.
//
// Both matter for a daemon on loopback. A page on another site cannot
// reach it through the browser with its own Origin, but it can rebind its
// own DNS name to 127.0.0.1: its requests then carry Host and Origin
// evil.example:PORT, which agree with each other, and without the Host
// check the WebSocket would be upgraded and its command run. Only names
// that cannot be rebound pass: the loopback names, the address the daemon
// listens on and names the operator allowed. A request without Origin
// comes from a program, not a page, and passes the Origin check.
//
// Origin "null" (a sandboxed frame, of any site) passes only to GET what
// the page's sandboxed probe frames need (probe.js): their document and
// script, and the alive probe, none of which does anything or says
// anything a page cannot already learn.
type hostGuard struct {
	next    http.Handler
	allowed map[string]bool // lower-case hostnames, without port
}

// newHostGuard guards next. listen is the address the daemon listens on;
// extra are further hostnames (or host:port) to serve, e.g. the name a
// reverse proxy forwards.
func newHostGuard(next http.Handler, listen string, extra []string) *hostGuard {
	g := &hostGuard{next: next, allowed: map[string]bool{
		"localhost": true, "127.0.0.1": true, "::1": true,
	}}
	for _, h := range append([]string{listen}, extra...) {
		if name := hostname(h); name != "" && name != "0.0.0.0" && name != "::" {
			g.allowed[name] = true
		}
	}
	return g
}

// hostname is the lower-case host of a host or host:port, brackets
// removed.
func hostname(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.allowed[hostname(r.Host)] {
		http.Error(w, "forbidden: this daemon does not serve the host "+r.Host, http.StatusForbidden)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && (origin != "null" || !nullOriginAllowed(r)) {
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
			http.Error(w, "forbidden: origin "+origin+" is not this daemon's", http.StatusForbidden)
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

// nullOriginAllowed: the requests of the page's sandboxed probe frames.
func nullOriginAllowed(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	switch r.URL.Path {
	case "/probe-frame.html", "/probe-frame.js", "/alive":
		return true
	}
	return false
}
