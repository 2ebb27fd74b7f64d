package acme

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

type countDenials map[string]int

func (c countDenials) Record(protocol, source, kind string) { c[protocol+"|"+source+"|"+kind]++ }

// deniedJWS counts what a client cannot fix by retrying, by problem type,
// and neither a stale nonce (clients retry it) nor our own 5xx.
func TestDeniedJWSKinds(t *testing.T) {
	c := countDenials{}
	s := &Server{opts: Options{Denials: c}}
	r := httptest.NewRequest("POST", "/acme/default/new-account", nil)
	r.RemoteAddr = "192.0.2.7:4711"
	for _, tc := range []struct {
		p    *Problem
		want string
	}{
		{malformed("the JWS signature does not verify"), "acme|192.0.2.7|acme.jws.malformed"},
		{problem(probAccountDoesNotExist, http.StatusBadRequest, "no such account"), "acme|192.0.2.7|acme.jws.accountDoesNotExist"},
		{problem(probBadNonce, http.StatusBadRequest, "stale"), ""},
		{problem(probServerInternal, http.StatusInternalServerError, "db"), ""},
		{nil, ""},
	} {
		before := len(c)
		total := 0
		for _, n := range c {
			total += n
		}
		s.deniedJWS(r, tc.p)
		after := 0
		for _, n := range c {
			after += n
		}
		switch {
		case tc.want == "" && after != total:
			t.Errorf("deniedJWS(%v) counted: %v", tc.p, c)
		case tc.want != "" && c[tc.want] != 1:
			t.Errorf("deniedJWS(%v) = %v (had %d), want %s once", tc.p, c, before, tc.want)
		}
	}
}
