package acme

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// issueTimeout bounds one issuance started by finalize; it keeps running
// after the client has been told "processing". The CA's own deadline
// (ca.MaxIssueDuration, 20 s) is shorter and is the one the crash
// recovery's age threshold is built on; this one also covers recording
// the outcome.
const issueTimeout = 5 * time.Minute

// finalize submits the CSR of a ready order (RFC 8555 section 7.4). The
// order moves ready → processing here, and processing → valid or invalid
// when the CA answers. If the CA answers within FinalizeWait the response
// carries the outcome; otherwise it is "processing" with Retry-After and
// the client polls the order (the Location header).
func (s *Server) finalize(w http.ResponseWriter, req *request) error {
	o, zs, err := s.loadOrder(req, chi.URLParam(req.Request, "id"))
	if err != nil {
		return err
	}
	// From here every refusal is audited as acme.order.finalize with
	// outcome error, as the CA's own failures are in issue: a CSR that
	// does not match or a CAA record that forbids issuance is exactly
	// what an operator looks for afterwards.
	refuse := func(err error) error {
		p := caProblem(err)
		ev := s.event(req, "acme.order.finalize", "acme-order:"+o.ID)
		ev.Outcome = "error"
		s.audit(req.Context(), ev, map[string]any{"status": o.Status, "problem": p.Type, "detail": p.Detail})
		return p
	}
	var in struct {
		CSR string `json:"csr"`
	}
	if p := decodePayload(req, &in); p != nil {
		return refuse(p)
	}
	orderURL := s.url(req.Request, "order", o.ID)
	if o.Status != statusReady {
		return refuse(problem(probOrderNotReady, http.StatusForbidden, "the order is %s, not ready", o.Status))
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(in.CSR, "="))
	if err != nil {
		return refuse(problem(probBadCSR, http.StatusBadRequest, "csr is not base64url"))
	}
	if p := csrMatchesOrder(der, o, req.account); p != nil {
		return refuse(p)
	}
	// CAA once more, just before issuance: records may have changed since
	// validation. A refusal leaves the order ready for a retry.
	if p := s.caaOrder(req.Context(), s.profile(req.Request), s.accountURL(req.Request, o.AccountID), zs); p != nil {
		return refuse(p)
	}
	creq := ca.Request{CSR: der, Profile: o.Profile, Identifiers: caIdentifiers(o), Requester: s.accountURL(req.Request, o.AccountID),
		Protocol: "acme", Source: remoteIP(req.Request)}
	if o.NotBefore != nil {
		creq.NotBefore = *o.NotBefore
	}
	if o.NotAfter != nil {
		creq.NotAfter = *o.NotAfter
	}
	if creq.Predecessor, err = s.predecessor(req, o); err != nil {
		return refuse(err)
	}
	// The order names its certificate as soon as the serial is reserved,
	// still processing: after a crash the recovery pass finds the
	// certificate and links it (valid) or, if it was never committed,
	// closes the order (invalid). See inventory.Store.Recover.
	creq.Reserved = func(ctx context.Context, issuerID, serial string) error {
		return s.store.UpdateACMEOrder(ctx, o.ID, []string{statusProcessing},
			inventory.ACMEOrderUpdate{Status: statusProcessing, CertIssuerID: issuerID, CertSerial: serial})
	}
	if err := s.store.UpdateACMEOrder(req.Context(), o.ID, []string{statusReady}, inventory.ACMEOrderUpdate{Status: statusProcessing}); err != nil {
		if errors.Is(err, inventory.ErrConflict) {
			return refuse(problem(probOrderNotReady, http.StatusForbidden, "the order is being finalized by another request"))
		}
		return refuse(internal(err))
	}
	s.m.order(statusProcessing)
	ev := s.event(req, "acme.order.finalize", "acme-order:"+o.ID)
	done := make(chan *Problem, 1)
	go func() { done <- s.issue(context.WithoutCancel(req.Context()), o.ID, creq, ev) }()
	select {
	case p := <-done:
		if p != nil {
			return p
		}
	case <-time.After(s.opts.FinalizeWait):
		w.Header().Set("Retry-After", "1")
	}
	fresh, err := s.store.ACMEOrder(req.Context(), o.ID)
	if err != nil {
		return internal(err)
	}
	writeJSON(w, http.StatusOK, orderURL, s.orderObject(req.Request, fresh))
	return nil
}

// issue asks the CA for the certificate and records the outcome on the
// order, in the metrics and in the audit log (ev, outcome filled in). It
// runs detached from the request.
func (s *Server) issue(ctx context.Context, orderID string, creq ca.Request, ev inventory.Event) *Problem {
	ctx, cancel := context.WithTimeout(ctx, issueTimeout)
	defer cancel()
	issued, err := s.ca.Issue(ctx, creq)
	u := inventory.ACMEOrderUpdate{Status: statusValid}
	var p *Problem
	if err != nil {
		p = caProblem(err)
		if p.Status >= 500 {
			s.log.Error("acme: issuance failed", "order", orderID, "err", err)
		}
		b, _ := json.Marshal(p)
		u = inventory.ACMEOrderUpdate{Status: statusInvalid, Error: b}
	} else {
		u.CertIssuerID, u.CertSerial = issued.Record.IssuerID, issued.Record.Serial
	}
	err = s.store.UpdateACMEOrder(ctx, orderID, []string{statusProcessing}, u)
	if errors.Is(err, inventory.ErrConflict) && p == nil {
		// A poll (refreshOrder) or the recovery pass linked the
		// certificate first: the outcome is already recorded.
		if o, rerr := s.store.ACMEOrder(ctx, orderID); rerr == nil && o.Status == statusValid && o.CertSerial == u.CertSerial {
			err = nil
		}
	}
	if err != nil {
		s.log.Error("acme: recording the finalize outcome", "order", orderID, "err", err)
		if p == nil {
			p = internal(err)
		}
	} else {
		s.m.order(u.Status)
	}
	details := map[string]any{"status": u.Status}
	if p != nil {
		ev.Outcome, details["problem"], details["detail"] = "error", p.Type, p.Detail
	} else {
		details["certificate"] = u.CertIssuerID + "/" + u.CertSerial
	}
	s.audit(ctx, ev, details)
	return p
}

// caIdentifiers converts the order's identifiers to the ca's notation.
func caIdentifiers(o *inventory.ACMEOrder) []string {
	out := make([]string, 0, len(o.Identifiers))
	for _, id := range o.Identifiers {
		out = append(out, id.Type+":"+id.Value)
	}
	return out
}

// csrMatchesOrder wants the CSR's names to be exactly the order's
// identifiers (RFC 8555 section 7.4); the common name, if any, must be
// one of them. The CSR's key must not be the account key (section 11.1:
// one key, one purpose). A mismatch leaves the order ready for a
// corrected CSR.
func csrMatchesOrder(der []byte, o *inventory.ACMEOrder, acct *inventory.ACMEAccount) *Problem {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return problem(probBadCSR, http.StatusBadRequest, "the CSR cannot be parsed")
	}
	if err := csr.CheckSignature(); err != nil {
		return problem(probBadCSR, http.StatusBadRequest, "the CSR signature does not verify")
	}
	if tp, err := thumbprintOfPublic(csr.PublicKey); err == nil && tp == acct.Thumbprint {
		return problem(probBadCSR, http.StatusBadRequest, "the CSR's public key is the account key; use a separate key for the certificate")
	}
	var got, want []string
	for _, n := range csr.DNSNames {
		got = append(got, "dns:"+strings.ToLower(n))
	}
	for _, ip := range csr.IPAddresses {
		got = append(got, "ip:"+ip.String())
	}
	if len(csr.URIs) > 0 || len(csr.EmailAddresses) > 0 {
		return problem(probBadCSR, http.StatusBadRequest, "the CSR has names (URI or e-mail) ACME cannot authorize")
	}
	want = caIdentifiers(o)
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return problem(probBadCSR, http.StatusBadRequest, "the CSR names %v are not the order's identifiers %v", got, want)
	}
	if cn := strings.ToLower(csr.Subject.CommonName); cn != "" && !slices.Contains(want, "dns:"+cn) && !slices.Contains(want, "ip:"+cn) {
		return problem(probBadCSR, http.StatusBadRequest, "the CSR common name %q is not one of the order's identifiers", cn)
	}
	return nil
}

// predecessor names the certificate this order renews: the one named by
// ARI's replaces, else the newest certificate of this account with the
// same names, so renewals by clients without ARI still link up.
func (s *Server) predecessor(req *request, o *inventory.ACMEOrder) (string, error) {
	if o.Replaces != "" {
		c, p := s.replacedCert(req, o.Replaces)
		if p != nil {
			return "", p
		}
		return c.IssuerID + "/" + c.Serial, nil
	}
	cs, err := s.store.FindCertificates(req.Context(), inventory.CertFilter{Requester: s.accountURL(req.Request, o.AccountID),
		Protocol: "acme", States: []inventory.State{inventory.StateIssued}, Limit: 50})
	if err != nil {
		return "", internal(err)
	}
	want := caIdentifiers(o)
	slices.Sort(want)
	for _, c := range cs {
		sans := slices.Clone(c.SANs)
		slices.Sort(sans)
		if slices.Equal(sans, want) {
			return c.IssuerID + "/" + c.Serial, nil
		}
	}
	return "", nil
}
