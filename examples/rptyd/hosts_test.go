package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHostGuard(t *testing.T) {
	t.Parallel()
	reached := false
	g := newHostGuard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached = true
		w.WriteHeader(http.StatusTeapot)
	}), "127.0.0.1:8080", []string{"term.example.org"})
	for _, tc := range []struct {
		name, host, origin string
		pass               bool
	}{
		{"DNS rebinding", "evil.example:8080", "http://evil.example:8080", false},
		{"rebinding without origin", "evil.example:8080", "", false},
		{"foreign origin", "127.0.0.1:8080", "http://evil.example", false},
		{"origin on another port", "127.0.0.1:8080", "http://127.0.0.1:9999", false},
		{"null origin", "127.0.0.1:8080", "null", false},
		{"non-web origin scheme", "127.0.0.1:8080", "file://127.0.0.1:8080", false},
		{"missing origin (a program)", "127.0.0.1:8080", "", true},
		{"page from the daemon", "127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"localhost", "localhost:8080", "http://localhost:8080", true},
		{"localhost in capitals", "LOCALHOST:8080", "http://localhost:8080", true},
		{"IPv6 loopback", "[::1]:8080", "http://[::1]:8080", true},
		{"configured name", "term.example.org", "https://term.example.org", true},
		{"configured name, foreign origin", "term.example.org", "https://evil.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reached = false
			req := httptest.NewRequest(http.MethodGet, "/ws?reconnect=x", nil)
			req.Host = tc.host
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, req)
			if tc.pass {
				if !reached || rec.Code != http.StatusTeapot {
					t.Fatalf("refused: %d %q", rec.Code, rec.Body.String())
				}
				return
			}
			if reached || rec.Code != http.StatusForbidden {
				t.Fatalf("status %d (handler reached: %v), want 403", rec.Code, reached)
			}
		})
	}
}

// A null origin (a sandboxed frame, of any site) reaches only what the
// page's sandboxed probe frames GET (probe.js).
func TestHostGuardNullOrigin(t *testing.T) {
	t.Parallel()
	g := newHostGuard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}), "127.0.0.1:8080", nil)
	for _, tc := range []struct {
		host, method, path string
		pass               bool
	}{
		{"127.0.0.1:8080", http.MethodGet, "/probe-frame.html", true},
		{"127.0.0.1:8080", http.MethodGet, "/probe-frame.js", true},
		{"127.0.0.1:8080", http.MethodGet, "/alive", true},
		{"127.0.0.1:8080", http.MethodGet, "/", false},
		{"127.0.0.1:8080", http.MethodGet, "/ws?reconnect=x", false},
		{"127.0.0.1:8080", http.MethodGet, "/sessions", false},
		{"127.0.0.1:8080", http.MethodDelete, "/sessions/x", false},
		{"127.0.0.1:8080", http.MethodPost, "/alive", false},
		{"evil.example:8080", http.MethodGet, "/alive", false},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Host = tc.host
		req.Header.Set("Origin", "null")
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if passed := rec.Code == http.StatusTeapot; passed != tc.pass || (!passed && rec.Code != http.StatusForbidden) {
			t.Errorf("%s %s (Host %s, Origin null): status %d, want pass %v (else 403)", tc.method, tc.path, tc.host, rec.Code, tc.pass)
		}
	}
}
