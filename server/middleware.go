package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// logRequests writes one line per request: method, path, status, size,
// duration and remote address. It deliberately leaves out the query string
// and every header: an Authorization header holds EST passwords, and query
// strings can hold tokens. Liveness and scrape requests log at debug so a
// load balancer's probes do not drown the log.
func (s *Server) logRequests(listener string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK // handler wrote nothing
			}
			level := slog.LevelInfo
			if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
				level = slog.LevelDebug
			}
			s.log.LogAttrs(r.Context(), level, "request",
				slog.String("listener", listener),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int("bytes", ww.BytesWritten()),
				slog.Duration("duration", time.Since(start)),
				slog.String("remote", r.RemoteAddr),
			)
		})
	}
}

// recoverPanics turns a handler panic into a bare 500. The panic value and
// stack go to the log only: they can hold internal state a client must not
// see. http.ErrAbortHandler keeps its net/http meaning (abort silently).
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if r.Header.Get("Connection") != "Upgrade" {
				s.httpError(w, r, http.StatusInternalServerError, http.StatusText(http.StatusInternalServerError))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// capBody bounds every request body. A declared Content-Length over the cap
// is refused at once; an undeclared (chunked) body fails the handler's read
// with *http.MaxBytesError past the cap.
func (s *Server) capBody(next http.Handler) http.Handler {
	limit := s.opts.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			s.httpError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", limit))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}

// ErrorWriter may be implemented by a Mounter whose clients expect errors
// in their protocol's own format (ACME's problem documents with a fresh
// nonce). The middleware asks it first for the errors it raises before
// any route runs: a body over the cap, a recovered panic.
type ErrorWriter interface {
	// WriteError answers r with status and a detail safe to show the
	// client, and reports whether it did; false leaves r to the next
	// writer or to a plain-text error. Called concurrently; it must not
	// read r's body.
	WriteError(w http.ResponseWriter, r *http.Request, status int, detail string) bool
}

// httpError sends a middleware error: in a front end's format when one
// claims r, as plain text otherwise.
func (s *Server) httpError(w http.ResponseWriter, r *http.Request, status int, detail string) {
	for _, mt := range s.opts.Mount {
		if ew, ok := mt.(ErrorWriter); ok && ew.WriteError(w, r, status, detail) {
			return
		}
	}
	http.Error(w, detail, status)
}

// IsBodyTooLarge reports whether err came from reading past the body cap,
// so front ends can answer 413 rather than 400.
func IsBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// metrics are the per-request Prometheus series. The route label is chi's
// pattern ("/ca/{file}"), never the raw path, so the number of series stays
// bounded whatever clients send.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mica_http_requests_total",
			Help: "HTTP requests served, by listener, method, route pattern and status code.",
		}, []string{"listener", "method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mica_http_request_duration_seconds",
			Help:    "HTTP request latency, by listener, method and route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"listener", "method", "route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) middleware(listener string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			method := r.Method
			switch method {
			case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
			default:
				method = "other" // bound label values against junk methods
			}
			m.requests.WithLabelValues(listener, method, route, strconv.Itoa(status)).Inc()
			m.duration.WithLabelValues(listener, method, route).Observe(time.Since(start).Seconds())
		})
	}
}
