// Package status is the relying-party front end: it serves CRLs
// (/crl/{file}.crl) and OCSP (POST /ocsp, GET /ocsp/{base64}) on MICA's
// plain-HTTP listener. It decides nothing and signs nothing itself: the
// bytes come from the ca package ([ca.CA.CRL], [ca.CA.RespondOCSP]),
// which serves what the shared store holds, so every replica answers
// with the same bytes and ETags.
//
// It must never crash or answer 5xx on a malformed OCSP request: those
// get the malformedRequest OCSP status, as RFC 6960 asks.
package status

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/ca/revocation"
	"github.com/mica-pki/mica/inventory"
)

// Responder is what the handlers need from the CA; *ca.CA satisfies it.
// Both methods are safe for concurrent use and honour ctx.
type Responder interface {
	RespondOCSP(ctx context.Context, der []byte) ca.OCSPAnswer
	CRL(ctx context.Context, file string) (*inventory.CRL, error)
	RevocationStats() ca.RevocationStats
}

// Handler serves CRLs and OCSP. Create it with New and mount it.
type Handler struct {
	ca  Responder
	log *slog.Logger
	now func() time.Time

	ocspResponses *prometheus.CounterVec
}

// New builds the handler and registers its metrics on reg (nil: none):
// mica_ocsp_responses_total{status}, and mica_crl_signed_total,
// mica_ocsp_signed_total{kind} read from the CA's counters.
func New(c Responder, log *slog.Logger, reg prometheus.Registerer) *Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{ca: c, log: log, now: time.Now,
		ocspResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mica_ocsp_responses_total", Help: "OCSP responses sent, by status.",
		}, []string{"status"}),
	}
	if reg != nil {
		reg.MustRegister(h.ocspResponses,
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mica_crl_signed_total", Help: "CRLs signed by this process."},
				func() float64 { return float64(c.RevocationStats().CRLsSigned) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mica_ocsp_presigned_total", Help: "OCSP responses pre-signed by this process."},
				func() float64 { return float64(c.RevocationStats().OCSPPreSigned) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mica_ocsp_live_signed_total", Help: "OCSP responses signed per request (nonce, non-SHA-1 CertID)."},
				func() float64 { return float64(c.RevocationStats().OCSPLiveSigned) }),
		)
	}
	return h
}

// Mount registers the routes on the plain-HTTP router (server.Mounter).
func (h *Handler) Mount(_, plain chi.Router) {
	plain.Get("/crl/{file}", h.serveCRL)
	plain.Post("/ocsp", h.postOCSP)
	plain.Post("/ocsp/", h.postOCSP)
	plain.Get("/ocsp/*", h.getOCSP)
}

// Describe lists the URLs for `mica dev`'s banner.
func (h *Handler) Describe(_, plainBase string) []string {
	return []string{"CRL " + plainBase + "/crl/{issuer}.crl", "OCSP " + plainBase + "/ocsp"}
}

// serveCRL serves the stored DER. http.ServeContent answers If-None-Match
// and If-Modified-Since with 304 and handles Range; the ETag is the DER's
// SHA-256, the same on every replica.
func (h *Handler) serveCRL(w http.ResponseWriter, r *http.Request) {
	file := chi.URLParam(r, "file")
	crl, err := h.ca.CRL(r.Context(), file)
	switch {
	case ca.KindOf(err) == ca.ErrNotFound:
		http.NotFound(w, r)
		return
	case err != nil:
		h.log.Error("serving CRL", "file", file, "err", err)
		w.Header().Set("Retry-After", "30")
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", revocation.CRLContentType)
	w.Header().Set("ETag", `"`+crl.SHA256+`"`)
	w.Header().Set("Cache-Control", cacheControl(h.now(), crl.NextUpdate))
	w.Header().Set("Expires", crl.NextUpdate.UTC().Format(http.TimeFormat))
	http.ServeContent(w, r, "", crl.ThisUpdate, bytes.NewReader(crl.DER))
}

// cacheControl lets caches keep a response until its nextUpdate, and no
// longer: after that a relying party must fetch a fresh one.
func cacheControl(now, next time.Time) string {
	secs := int64(next.Sub(now) / time.Second)
	if secs < 0 {
		secs = 0
	}
	return fmt.Sprintf("public, max-age=%d, no-transform, must-revalidate", secs)
}

func (h *Handler) postOCSP(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), revocation.OCSPRequestContentType) {
		h.reply(w, r, malformed)
		return
	}
	der, err := io.ReadAll(io.LimitReader(r.Body, revocation.MaxRequestSize+1))
	if err != nil || len(der) > revocation.MaxRequestSize {
		h.reply(w, r, malformed)
		return
	}
	h.reply(w, r, h.ca.RespondOCSP(r.Context(), der))
}

// getOCSP decodes the raw (still escaped) path: chi and proxies may have
// unescaped or cleaned r.URL.Path, and standard base64 contains '/' and
// '+', often "//", which a cleaned path would lose.
func (h *Handler) getOCSP(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.EscapedPath()
	i := strings.Index(raw, "/ocsp/")
	if i < 0 {
		h.reply(w, r, malformed)
		return
	}
	der, err := revocation.DecodeGETRequest(raw[i+len("/ocsp/"):])
	if err != nil {
		h.reply(w, r, malformed)
		return
	}
	h.reply(w, r, h.ca.RespondOCSP(r.Context(), der))
}

var malformed = ca.OCSPAnswer{DER: []byte(revocation.MalformedRequestResponse), Status: "malformedRequest"}

// reply writes an OCSP answer. Pre-signed answers are cacheable until
// their nextUpdate (RFC 5019 section 6) and carry an ETag, so CDNs and
// proxies can absorb GET traffic; nonce answers are bound to one request.
func (h *Handler) reply(w http.ResponseWriter, r *http.Request, a ca.OCSPAnswer) {
	h.ocspResponses.WithLabelValues(a.Status).Inc()
	hd := w.Header()
	hd.Set("Content-Type", revocation.OCSPResponseContentType)
	if !a.Cacheable {
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Length", fmt.Sprint(len(a.DER)))
		_, _ = w.Write(a.DER)
		return
	}
	sum := sha256.Sum256(a.DER)
	hd.Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
	hd.Set("Cache-Control", cacheControl(h.now(), a.NextUpdate))
	hd.Set("Expires", a.NextUpdate.UTC().Format(http.TimeFormat))
	if r.Method == http.MethodPost {
		// POST responses are not cached by HTTP caches; ServeContent's
		// conditional logic is for GET.
		hd.Set("Content-Length", fmt.Sprint(len(a.DER)))
		_, _ = w.Write(a.DER)
		return
	}
	http.ServeContent(w, r, "", a.ThisUpdate, bytes.NewReader(a.DER))
}
