package web

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/mica-pki/mica/inventory"
)

func init() { pageNames = append(pageNames, "issuers") }

// issuerView is one issuer joined with its key record (the key inventory
// row whose issuer_id names it) and, on the dashboard, CRL and OCSP
// freshness.
type issuerView struct {
	inventory.Issuer
	Parent       string
	KeyID        string // "" when the key inventory has no record
	ActiveFrom   string // key activation, else the certificate's notBefore
	RotationDue  string
	RotationLate bool // rotation due date has passed
	RetiredAt    string
	Protection   string // from the key record's protection flags
	Cryptoperiod string

	CRLThis, CRLNext string
	CRLState         string // fresh, stale or none
	OCSPOldest       string // age of the oldest pre-signed response
	OCSPState        string // fresh, stale or none
	OCSPResponses    int64
}

// issuerKey picks an issuer's key record: the one at the issuer's key
// URI, else an active one, else the newest.
func issuerKey(keys []inventory.Key, is inventory.Issuer) *inventory.Key {
	var pick *inventory.Key
	for i := range keys {
		k := &keys[i]
		if k.IssuerID != is.ID {
			continue
		}
		switch {
		case is.KeyURI != "" && k.URI == is.KeyURI:
			return k
		case pick == nil, k.Status == inventory.KeyActive && pick.Status != inventory.KeyActive:
			pick = k
		}
	}
	return pick
}

// issuerViews joins the issuers with the key inventory. A key inventory
// that cannot be read leaves the key columns saying so.
func (s *Server) issuerViews(ctx context.Context, now time.Time) ([]issuerView, error) {
	iss, err := s.store.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	keys, kerr := s.store.Keys(ctx)
	if kerr != nil {
		s.log.Error("issuers: read key inventory", "err", kerr)
	}
	out := make([]issuerView, len(iss))
	for i, is := range iss {
		v := issuerView{Issuer: is, Parent: is.ParentID, ActiveFrom: day(is.NotBefore), RotationDue: "—", RetiredAt: "—",
			Protection: "no key record", Cryptoperiod: "—"}
		if is.IsRoot {
			v.Parent = "(root)"
		}
		if kerr != nil {
			v.Protection = "key inventory unavailable"
		}
		if k := issuerKey(keys, is); k != nil {
			v.KeyID = k.ID
			if !k.ActivateAt.IsZero() {
				v.ActiveFrom = day(k.ActivateAt)
			}
			v.RotationDue, v.RetiredAt = dayPtr(k.RotationDue), dayPtr(k.RetiredAt)
			v.RotationLate = k.RotationDue != nil && !now.Before(*k.RotationDue) && k.RetiredAt == nil
			v.Protection = protectionText(k.Backend, k.Protection)
			v.Cryptoperiod = period(k.Cryptoperiod)
		}
		out[i] = v
	}
	return out, nil
}

// addFreshness fills the CRL and OCSP columns of the dashboard's CA
// health table: the full CRL's thisUpdate/nextUpdate (stale once
// nextUpdate has passed) and the oldest pre-signed OCSP response's age
// (stale once the earliest nextUpdate has passed).
func (s *Server) addFreshness(ctx context.Context, vs []issuerView, now time.Time) {
	ocsp := map[string]inventory.OCSPFreshness{}
	if fs, err := s.store.OCSPFreshnessByIssuer(ctx); err != nil {
		s.log.Error("dashboard: OCSP freshness", "err", err)
	} else {
		for _, f := range fs {
			ocsp[f.IssuerID] = f
		}
	}
	for i := range vs {
		v := &vs[i]
		v.CRLState, v.CRLThis, v.CRLNext = "none", "—", "—"
		if c, err := s.store.LatestCRL(ctx, v.ID, 0, false); err == nil {
			v.CRLThis, v.CRLNext = c.ThisUpdate.UTC().Format("2006-01-02 15:04"), c.NextUpdate.UTC().Format("2006-01-02 15:04")
			v.CRLState = "fresh"
			if !now.Before(c.NextUpdate) {
				v.CRLState = "stale"
			}
		} else if !isNotFound(err) {
			s.log.Error("dashboard: read CRL", "issuer", v.ID, "err", err)
		}
		v.OCSPState, v.OCSPOldest = "none", "—"
		if f, ok := ocsp[v.ID]; ok && f.Responses > 0 {
			v.OCSPResponses = f.Responses
			v.OCSPOldest = age(now.Sub(f.OldestThisUpdate))
			v.OCSPState = "fresh"
			if !now.Before(f.EarliestNext) {
				v.OCSPState = "stale"
			}
		}
	}
}

// age is a duration as a reader wants it: minutes, hours or days.
func age(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// issuersPage: GET /ui/issuers — chain, status, activation, rotation
// due date, retirement, key protection and cryptoperiod from the key
// inventory.
func (s *Server) issuersPage(w http.ResponseWriter, r *http.Request) {
	vs, err := s.issuerViews(r.Context(), s.now())
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Issuers", messageOf(err), listData{})
		return
	}
	s.render(w, r, http.StatusOK, "issuers", "Issuers", "", vs)
}
