package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"cdr.dev/slog/v3"
	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/reconnectingpty/reconnectingpty"
)

// sessionJSON is one entry of GET /sessions: the library's snapshot plus
// the ages the page shows, measured on the daemon's clock.
type sessionJSON struct {
	reconnectingpty.SessionInfo
	// AgeSeconds is how long the session has run.
	AgeSeconds float64 `json:"age_seconds"`
	// IdleSeconds is how long since its last input or output (its age if
	// neither happened).
	IdleSeconds float64 `json:"idle_seconds"`
}

// sessionsAPI serves the session list and close on the HTTP listener:
//
//	GET    /sessions       200, a JSON array of sessionJSON, oldest first
//	DELETE /sessions/{id}  204 once the session is gone; 404 if there is
//	                       none; 400 for a malformed ID
//
// The list names every session ID, and a session ID is a capability: like
// the bridge, this example authenticates no one and relies on listening on
// loopback. An embedding application must authorise both requests itself.
type sessionsAPI struct {
	srv    *reconnectingpty.Server
	logger slog.Logger
}

func (a *sessionsAPI) list(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	out := []sessionJSON{}
	for _, info := range a.srv.Sessions() {
		last := info.Started
		if info.LastInput.After(last) {
			last = info.LastInput
		}
		if info.LastOutput.After(last) {
			last = info.LastOutput
		}
		out = append(out, sessionJSON{
			SessionInfo: info,
			AgeSeconds:  now.Sub(info.Started).Seconds(),
			IdleSeconds: now.Sub(last).Seconds(),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

func (a *sessionsAPI) close(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil || id == uuid.Nil {
		http.Error(w, "invalid session ID: want a non-nil UUID", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	err = a.srv.CloseSession(ctx, id)
	switch {
	case err == nil:
		a.logger.Info(ctx, "session closed over http", slog.F("session_id", id.String()), slog.F("remote_addr", r.RemoteAddr))
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, reconnectingpty.ErrSessionNotFound):
		http.Error(w, "no such session", http.StatusNotFound)
	default:
		a.logger.Warn(ctx, "close session over http", slog.Error(err))
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

// viewOptions reads the bridge's view parameter: view=1 serves the
// connection read-only. This daemon trusts the query because it is a local
// demo; an embedding application decides read-only from its own
// authorisation of the user, never from anything the client sends.
func viewOptions(q url.Values) (reconnectingpty.ConnOptions, error) {
	switch v := q.Get("view"); v {
	case "", "0":
		return reconnectingpty.ConnOptions{}, nil
	case "1":
		return reconnectingpty.ConnOptions{ReadOnly: true}, nil
	default:
		return reconnectingpty.ConnOptions{}, xerrors.Errorf("invalid view parameter %q: want 1 (read-only) or 0", v)
	}
}
