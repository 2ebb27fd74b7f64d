package web

import (
	"net/http"

	"github.com/mica-pki/mica/ca"
)

// ProfileLister reads the issuance profiles: *ca.CA. Both methods are
// safe for concurrent use and return copies.
type ProfileLister interface {
	ProfileNames() []string
	Profile(name string) (ca.Profile, bool)
}

var _ ProfileLister = (*ca.CA)(nil)

// profileView is a profile as shown: its policy, with lifetimes also in
// words (the JSON durations of ca.Profile are nanoseconds).
type profileView struct {
	ca.Profile
	MaxLifetimeText     string `json:"max_lifetime_text"`
	DefaultLifetimeText string `json:"default_lifetime_text"`
}

// profileViews lists the profiles in the CA's order.
func (s *Server) profileViews() ([]profileView, error) {
	if s.creds.profiles == nil {
		return nil, errNotConfigured
	}
	out := []profileView{}
	for _, n := range s.creds.profiles.ProfileNames() {
		p, ok := s.creds.profiles.Profile(n)
		if !ok {
			continue // removed between the two calls: not listed
		}
		p.Name = n
		out = append(out, profileView{Profile: p, MaxLifetimeText: ca.HumanDuration(p.MaxLifetime), DefaultLifetimeText: ca.HumanDuration(p.DefaultLifetime)})
	}
	return out, nil
}

// listProfiles: GET /api/v1/profiles (operator, admin) — read-only
// issuance policy: names, lifetimes, key types, key usages, name
// constraints.
func (s *Server) listProfiles(w http.ResponseWriter, r *http.Request) {
	ps, err := s.profileViews()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"profiles": ps})
}
