package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/mica-pki/mica/inventory"
)

// AgentReport is what `mica agent` sends: the certificates it found in
// its configured paths (chains as DER) and the files it could not read.
type AgentReport struct {
	Found  []AgentFound         `json:"found"`
	Errors []inventory.JobError `json:"errors"`
}

// AgentFound is one file's certificates.
type AgentFound struct {
	Path  string   `json:"path"`
	Chain [][]byte `json:"chain"` // DER, base64 in JSON
}

// MaxAgentBody caps one agent report (a host with many certificates).
const MaxAgentBody = 8 << 20

// agentReport: POST /api/v1/agent/report over mutual TLS. The agent's
// identity is its client certificate, which the TLS layer verified and
// which must be one MICA issued and still valid: its record is found by
// fingerprint. The host recorded in every location is the certificate's
// common name, never a value from the body.
func (s *Server) agentReport(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mica"`)
		writeError(w, http.StatusUnauthorized, "agent reports need a MICA-issued TLS client certificate")
		return
	}
	leaf := r.TLS.VerifiedChains[0][0]
	sum := sha256.Sum256(leaf.Raw)
	rec, err := s.store.CertificateByFingerprint(r.Context(), hex.EncodeToString(sum[:]))
	if err != nil || rec.EffectiveState(s.now()) != inventory.StateIssued || leaf.Subject.CommonName == "" {
		s.audit(r, inventory.Event{Actor: "agent:" + truncate(leaf.Subject.CommonName, 64), Action: "agent.report", Outcome: "denied"})
		writeError(w, http.StatusForbidden, "client certificate is not a valid MICA-issued agent identity")
		return
	}
	host := leaf.Subject.CommonName
	var rep AgentReport
	if !decodeBody(w, r, &rep) {
		return
	}
	found, failed := 0, len(rep.Errors)
	for _, f := range rep.Found {
		if f.Path == "" || strings.ContainsRune(f.Path, 0) {
			failed++
			continue
		}
		for i, der := range f.Chain {
			if _, err := s.store.RecordSighting(r.Context(), inventory.Sighting{DER: der, Kind: inventory.KindAgent,
				Location: host + ":" + f.Path, ChainPos: i}); err != nil {
				failed++
				break
			}
			if i == 0 {
				found++
			}
		}
	}
	details, _ := json.Marshal(map[string]int{"found": found, "errors": failed})
	s.audit(r, inventory.Event{Actor: "agent:" + host, Action: "agent.report", Object: "host:" + host, Details: details})
	writeJSON(w, http.StatusOK, map[string]int{"recorded": found, "errors": failed})
}
