package acme

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

type authzJSON struct {
	Status     string          `json:"status"`
	Expires    string          `json:"expires"`
	Identifier Identifier      `json:"identifier"`
	Challenges []challengeJSON `json:"challenges"`
	Wildcard   bool            `json:"wildcard,omitempty"`
}

func (s *Server) authzObject(r *http.Request, z *inventory.ACMEAuthz) authzJSON {
	out := authzJSON{Status: z.Status, Expires: z.Expires.Format(time.RFC3339), Identifier: Identifier(z.Identifier), Wildcard: z.Wildcard}
	for i := range z.Challenges {
		c := &z.Challenges[i]
		// RFC 8555 section 7.1.4: once the authorization is valid, only
		// the challenge that validated it is listed.
		if z.Status == statusValid && c.Status != statusValid {
			continue
		}
		out.Challenges = append(out.Challenges, s.challengeObject(r, z, c))
	}
	return out
}

// refreshAuthz expires a pending or valid authorization past its expiry
// (RFC 8555 section 7.1.6).
func (s *Server) refreshAuthz(ctx context.Context, z *inventory.ACMEAuthz, now time.Time) error {
	if (z.Status != statusPending && z.Status != statusValid) || !now.After(z.Expires) {
		return nil
	}
	err := s.store.UpdateACMEAuthz(ctx, z.ID, []string{z.Status}, statusExpired)
	if err != nil && !errors.Is(err, inventory.ErrConflict) {
		return internal(err)
	}
	return s.reloadAuthz(ctx, z)
}

func (s *Server) reloadAuthz(ctx context.Context, z *inventory.ACMEAuthz) error {
	zs, err := s.store.ACMEAuthzs(ctx, inventory.ACMEAuthzFilter{ID: z.ID})
	if err != nil || len(zs) != 1 {
		return internal(err)
	}
	*z = zs[0]
	return nil
}

// loadAuthz returns the account's authorization, brought up to date.
func (s *Server) loadAuthz(req *request, id string) (*inventory.ACMEAuthz, error) {
	if id == "" {
		return nil, notFound("authorization")
	}
	zs, err := s.store.ACMEAuthzs(req.Context(), inventory.ACMEAuthzFilter{ID: id, AccountID: req.account.ID})
	if err != nil {
		return nil, internal(err)
	}
	if len(zs) != 1 {
		return nil, notFound("authorization")
	}
	z := &zs[0]
	if err := s.refreshAuthz(req.Context(), z, s.now()); err != nil {
		return nil, err
	}
	return z, nil
}

// authz answers POST-as-GET on an authorization, and deactivation
// (RFC 8555 section 7.5.2).
func (s *Server) authz(w http.ResponseWriter, req *request) error {
	z, err := s.loadAuthz(req, chi.URLParam(req.Request, "id"))
	if err != nil {
		return err
	}
	if !req.postAsGet {
		var in struct {
			Status string `json:"status"`
		}
		if p := decodePayload(req, &in); p != nil {
			return p
		}
		if in.Status != statusDeactivated {
			return malformed("a client may only set an authorization's status to deactivated")
		}
		if err := s.store.UpdateACMEAuthz(req.Context(), z.ID, []string{statusPending, statusValid}, statusDeactivated); err != nil {
			if errors.Is(err, inventory.ErrConflict) {
				return malformed("the authorization is %s and cannot be deactivated", z.Status)
			}
			return internal(err)
		}
		if err := s.reloadAuthz(req.Context(), z); err != nil {
			return err
		}
	}
	for _, c := range z.Challenges {
		if c.Status == statusProcessing {
			w.Header().Set("Retry-After", "1") // validation under way
		}
	}
	writeJSON(w, http.StatusOK, "", s.authzObject(req.Request, z))
	return nil
}
