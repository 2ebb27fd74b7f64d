package acme

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// Challenge types.
const (
	challHTTP01    = "http-01"
	challDNS01     = "dns-01"
	challTLSALPN01 = "tls-alpn-01"
)

type challengeJSON struct {
	Type      string          `json:"type"`
	URL       string          `json:"url"`
	Status    string          `json:"status"`
	Token     string          `json:"token"`
	Validated string          `json:"validated,omitempty"`
	Error     json.RawMessage `json:"error,omitempty"`
}

func (s *Server) challengeObject(r *http.Request, z *inventory.ACMEAuthz, c *inventory.ACMEChallenge) challengeJSON {
	out := challengeJSON{Type: c.Type, URL: s.url(r, "chall", z.ID, c.ID), Status: c.Status, Token: c.Token, Error: c.Error}
	if c.Validated != nil {
		out.Validated = c.Validated.Format(time.RFC3339)
	}
	return out
}

// challenge answers POST-as-GET on a challenge and, for a POST with a
// JSON object ({} in practice), starts its validation (RFC 8555 section
// 7.5.1). Starting is idempotent: a challenge already processing or done
// is returned as it is.
func (s *Server) challenge(w http.ResponseWriter, req *request) error {
	z, err := s.loadAuthz(req, chi.URLParam(req.Request, "authz"))
	if err != nil {
		return err
	}
	var c *inventory.ACMEChallenge
	for i := range z.Challenges {
		if z.Challenges[i].ID == chi.URLParam(req.Request, "id") {
			c = &z.Challenges[i]
		}
	}
	if c == nil {
		return notFound("challenge")
	}
	w.Header().Add("Link", fmt.Sprintf(`<%s>;rel="up"`, s.url(req.Request, "authz", z.ID)))
	if !req.postAsGet {
		var in map[string]any
		if p := decodePayload(req, &in); p != nil {
			return p
		}
		if z.Status == statusPending && c.Status == statusPending {
			if p := s.startValidation(req, z, c); p != nil {
				return p
			}
		}
	}
	if c.Status == statusProcessing {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, "", s.challengeObject(req.Request, z, c))
	return nil
}

// startValidation moves the challenge to processing and queues it. Only
// the request that wins the pending→processing transition queues a job.
func (s *Server) startValidation(req *request, z *inventory.ACMEAuthz, c *inventory.ACMEChallenge) *Problem {
	err := s.store.UpdateACMEChallenge(req.Context(), c.ID, []string{statusPending}, inventory.ACMEChallengeUpdate{Status: statusProcessing})
	if errors.Is(err, inventory.ErrConflict) {
		if err := s.reloadAuthz(req.Context(), z); err != nil {
			return internal(err)
		}
		for i := range z.Challenges {
			if z.Challenges[i].ID == c.ID {
				*c = z.Challenges[i]
			}
		}
		return nil
	}
	if err != nil {
		return internal(err)
	}
	c.Status = statusProcessing
	j := job{authz: *z, chall: *c, keyAuth: c.Token + "." + req.account.Thumbprint, account: s.accountURL(req.Request, req.account.ID),
		caa: s.profile(req.Request).CAAIdentities, done: make(chan struct{})}
	if !s.val.enqueue(j) {
		// Give the challenge back so the client can retry later.
		_ = s.store.UpdateACMEChallenge(req.Context(), c.ID, []string{statusProcessing}, inventory.ACMEChallengeUpdate{Status: statusPending})
		p := problem(probRateLimited, http.StatusServiceUnavailable, "the validation queue is full; retry shortly")
		p.retryAfter = 5
		return p
	}
	// Most validations take milliseconds: wait a moment so the response
	// (and the client's next poll) already shows the outcome, instead of
	// every client sleeping a Retry-After.
	select {
	case <-j.done:
		if err := s.reloadAuthz(req.Context(), z); err != nil {
			return internal(err)
		}
		for i := range z.Challenges {
			if z.Challenges[i].ID == c.ID {
				*c = z.Challenges[i]
			}
		}
	case <-time.After(challengeWait):
	case <-req.Context().Done():
	}
	return nil
}

// challengeWait bounds how long a challenge POST waits for its validation.
const challengeWait = 2 * time.Second
