package main

import (
	"context"
	"net/http"

	"cdr.dev/slog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reconnectingpty/reconnectingpty"
)

// newHTTPHandler serves /metrics. The web terminal joins it here.
func newHTTPHandler(ctx context.Context, srv *reconnectingpty.Server, reg *prometheus.Registry, logger slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
