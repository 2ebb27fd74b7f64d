package server

import (
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// router builds one listener's router with the shared middleware and the
// routes both listeners serve. Order matters: logging and metrics wrap
// recovery so a recovered panic is logged and counted as the 500 it became.
func (s *Server) router(listener string, m *metrics) chi.Router {
	r := chi.NewRouter()
	r.Use(s.logRequests(listener), m.middleware(listener), s.recoverPanics, s.capBody)
	r.Get("/healthz", s.healthz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}))
	return r
}

// healthz reports liveness: 200 when the store answers, 503 otherwise. The
// cause goes to the log, not the response.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.opts.Store.Ping(ctx); err != nil {
		s.log.Warn("health check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "unavailable")
		return
	}
	fmt.Fprintln(w, "ok")
}

// caCert serves /ca/{issuer}.crt: the issuer's certificate in DER as
// application/pkix-cert (RFC 5280 section 4.2.2.1 and RFC 2585), which is
// what the AIA caIssuers URL in every issued certificate points at.
// /ca/{issuer}.pem serves the same certificate PEM-encoded for people.
//
// Issuer IDs may contain dots, so the route takes the whole file name and
// splits the extension here rather than in the chi pattern.
func (s *Server) caCert(w http.ResponseWriter, r *http.Request) {
	file := chi.URLParam(r, "file")
	id, ext := file, ""
	if i := strings.LastIndexByte(file, '.'); i > 0 {
		id, ext = file[:i], file[i+1:]
	}
	if ext != "crt" && ext != "pem" {
		http.NotFound(w, r)
		return
	}
	issuers, err := s.opts.Store.Issuers(r.Context())
	if err != nil {
		s.log.Error("listing issuers", "err", err)
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	for _, iss := range issuers {
		if iss.ID != id || len(iss.DER) == 0 {
			continue
		}
		// CA certificates change only on rotation, and a rotated issuer
		// gets a new ID, so caches may keep this for a while.
		w.Header().Set("Cache-Control", "public, max-age=3600")
		if ext == "pem" {
			w.Header().Set("Content-Type", "application/x-pem-file")
			_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: iss.DER})
			return
		}
		w.Header().Set("Content-Type", "application/pkix-cert")
		_, _ = w.Write(iss.DER)
		return
	}
	http.NotFound(w, r)
}
