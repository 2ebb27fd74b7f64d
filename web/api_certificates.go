package web

import (
	"context"
	"encoding/pem"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// certView is a certificate as the API shows it: the stored record with
// its derived state, PEM and installations. Its serials shadow the
// record's (encoding/json prefers the shallower field) so they print in
// the one display form, inventory.FormatSerial, as the UI and CLI do.
type certView struct {
	*inventory.Certificate
	Serial         string                   `json:"serial"`
	Predecessor    string                   `json:"predecessor,omitempty"`
	SupersededBy   string                   `json:"superseded_by,omitempty"`
	EffectiveState inventory.State          `json:"effective_state"`
	PEM            string                   `json:"pem,omitempty"`
	Installations  []inventory.Installation `json:"installations,omitempty"`
}

// newCertView wraps c with its state at now and its serials for display.
func newCertView(c *inventory.Certificate, now time.Time) certView {
	return certView{Certificate: c, Serial: inventory.FormatSerial(c.Serial), Predecessor: optionalSerial(c.Predecessor),
		SupersededBy: optionalSerial(c.SupersededBy), EffectiveState: c.EffectiveState(now)}
}

// optionalSerial prints a serial that may be absent ("" stays "").
func optionalSerial(s string) string {
	if s == "" {
		return ""
	}
	return inventory.FormatSerial(s)
}

// listCertificates: GET /api/v1/certificates?q=…&state=…&cursor=…
func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	f, err := ParseFilter(r.URL.Query(), now)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := s.store.Search(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Certificates []certView `json:"certificates"`
		Next         string     `json:"next,omitempty"`
	}{Certificates: make([]certView, len(page.Certificates)), Next: page.Next}
	for i := range page.Certificates {
		c := &page.Certificates[i]
		out.Certificates[i] = newCertView(c, now)
	}
	writeJSON(w, http.StatusOK, out)
}

// issuersOfSerial returns the issuers of the certificates with serial:
// none, one, or two when serials collide (it looks no further).
func (s *Server) issuersOfSerial(ctx context.Context, serial string) ([]string, error) {
	page, err := s.store.Search(ctx, inventory.SearchFilter{CertFilter: inventory.CertFilter{Serial: serial, Limit: 2}})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(page.Certificates))
	for i, c := range page.Certificates {
		out[i] = c.IssuerID
	}
	return out, nil
}

// findOne resolves {serial} (and ?issuer= when serials collide across
// issuers) to one certificate with its labels.
func (s *Server) findOne(w http.ResponseWriter, r *http.Request, issuer string) (*inventory.Certificate, bool) {
	serial := chi.URLParam(r, "serial")
	if issuer == "" {
		found, err := s.issuersOfSerial(r.Context(), serial)
		if err != nil {
			s.fail(w, r, err)
			return nil, false
		}
		switch len(found) {
		case 0:
			writeError(w, http.StatusNotFound, "not found")
			return nil, false
		case 1:
			issuer = found[0]
		default:
			writeError(w, http.StatusConflict, "serial is used by several issuers: add ?issuer=")
			return nil, false
		}
	}
	c, err := s.store.CertificateDetail(r.Context(), issuer, serial)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return c, true
}

// getCertificate: GET /api/v1/certificates/{serial}[?issuer=]
func (s *Server) getCertificate(w http.ResponseWriter, r *http.Request) {
	c, ok := s.findOne(w, r, r.URL.Query().Get("issuer"))
	if !ok {
		return
	}
	v := newCertView(c, s.now())
	if len(c.DER) > 0 {
		v.PEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}))
	}
	if c.FingerprintSHA256 != "" {
		inst, err := s.store.Installations(r.Context(), c.FingerprintSHA256)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		v.Installations = inst
	}
	writeJSON(w, http.StatusOK, v)
}

// revokeCertificate: POST /api/v1/certificates/{serial}/revoke
// {"reason": "keyCompromise", "issuer": "…"}. Revocation and its audit
// event are ca.Revoke's; web only authenticates and translates.
func (s *Server) revokeCertificate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
		Issuer string `json:"issuer"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Issuer == "" {
		body.Issuer = r.URL.Query().Get("issuer")
	}
	c, ok := s.findOne(w, r, body.Issuer)
	if !ok {
		return
	}
	rec, err := s.rev.Revoke(r.Context(), ca.RevokeRequest{IssuerID: c.IssuerID, Serial: c.Serial, Reason: body.Reason,
		Actor: principalOf(r.Context()).Name, Protocol: "api", Source: sourceOf(r)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newCertView(rec, s.now()))
}

// putLabels: PUT /api/v1/certificates/{serial}/labels
// {"owner": …, "team": …, "environment": …, "tags": […]} replaces all
// four; audited by the store in the same transaction (old and new). PATCH
// /api/v1/certificates/{serial} changes only the fields given.
func (s *Server) putLabels(w http.ResponseWriter, r *http.Request) {
	var body struct {
		inventory.Labels
		Issuer string `json:"issuer"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	tags := body.Tags
	if tags == nil {
		tags = []string{}
	}
	s.applyLabels(w, r, body.Issuer, inventory.LabelChange{Owner: &body.Owner, Team: &body.Team, Environment: &body.Environment, Tags: &tags})
}

// patchCertificate: PATCH /api/v1/certificates/{serial}[?issuer=] (operator)
// {"owner": "alice", "team": "web", "environment": "prod", "tags": […],
// "add_tags": […], "remove_tags": […]}: absent fields stay as they are.
// The store writes one cert.label event with the old and new labels.
func (s *Server) patchCertificate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		inventory.LabelChange
		Issuer string `json:"issuer"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Empty() {
		writeError(w, http.StatusBadRequest, "nothing to change: give owner, team, environment, tags, add_tags or remove_tags")
		return
	}
	if err := body.Validate(); err != nil {
		s.fail(w, r, err)
		return
	}
	s.applyLabels(w, r, body.Issuer, body.LabelChange)
}

// applyLabels applies change to the certificate the request names (issuer
// from the body, else ?issuer=), audited by the store in the same
// transaction, and answers the certificate as it now is.
func (s *Server) applyLabels(w http.ResponseWriter, r *http.Request, issuer string, change inventory.LabelChange) {
	if issuer == "" {
		issuer = r.URL.Query().Get("issuer")
	}
	c, ok := s.findOne(w, r, issuer)
	if !ok {
		return
	}
	ev := s.apiEvent(r)
	if _, _, err := s.store.ChangeLabels(r.Context(), c.IssuerID, c.Serial, change, ev); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.store.CertificateDetail(r.Context(), c.IssuerID, c.Serial)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newCertView(c, s.now()))
}
