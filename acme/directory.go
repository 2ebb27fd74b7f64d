package acme

import (
	"net/http"
)

// directory answers GET /acme/{profile}/directory (RFC 8555 section 7.1.1)
// with the meta fields of the extensions MICA supports: ARI's renewalInfo
// (RFC 9773) and the profiles extension (draft-aaron-acme-profiles).
func (s *Server) directory(w http.ResponseWriter, r *http.Request) {
	p := s.profile(r)
	profiles := map[string]string{}
	for _, name := range p.CAProfiles {
		cp, _ := s.ca.Profile(name)
		desc := cp.Description
		if desc == "" {
			desc = name
		}
		profiles[name] = desc
	}
	meta := map[string]any{
		"externalAccountRequired": p.EAB == EABRequired,
		"profiles":                profiles,
	}
	if s.opts.TermsOfService != "" {
		meta["termsOfService"] = s.opts.TermsOfService
	}
	writeJSON(w, http.StatusOK, "", map[string]any{
		"newNonce":    s.url(r, "new-nonce"),
		"newAccount":  s.url(r, "new-account"),
		"newOrder":    s.url(r, "new-order"),
		"revokeCert":  s.url(r, "revoke-cert"),
		"keyChange":   s.url(r, "key-change"),
		"renewalInfo": s.url(r, "renewal-info"),
		"meta":        meta,
	})
}
