package acme

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
)

// nonceLifetime bounds how long a client may hold a nonce. certbot retries
// a badNonce only once, so a nonce must stay good for the whole of any
// realistic pause between two requests.
const nonceLifetime = time.Hour

// newNonceValue creates and stores a nonce. It is in the database, not in
// memory, so any replica accepts it.
func (s *Server) newNonceValue(ctx context.Context) (string, error) {
	n := randomID()
	if err := s.store.AddACMENonce(ctx, n, s.now().Add(nonceLifetime)); err != nil {
		return "", err
	}
	return n, nil
}

// newNonce answers newNonce (RFC 8555 section 7.2): the nonce itself is
// set by common on every response; HEAD gets 200, GET 204.
func (s *Server) newNonce(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func chiProfile(r *http.Request) string { return chi.URLParam(r, "profile") }
