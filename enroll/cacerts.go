package enroll

import (
	"net/http"
)

// cacerts answers GET /cacerts (RFC 7030 section 4.1) without
// authentication: a certs-only PKCS#7 holding the issuing chain and the
// root, which is what a device installs as its explicit trust anchor
// database.
func (s *Server) cacerts(w http.ResponseWriter, r *http.Request, _ *label) {
	certs := append(s.ca.Chain(), s.ca.Root())
	der, err := certsOnly(certs)
	if err != nil {
		s.fail(w, r, "cacerts", "", err)
		return
	}
	writeBase64(w, http.StatusOK, mediaPKCS7, der)
}
