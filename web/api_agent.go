package web

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/netip"
	"regexp"
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
// fingerprint. The host recorded in every location is the one the
// certificate proves (agentHost), never a value from the body.
func (s *Server) agentReport(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mica"`)
		writeError(w, http.StatusUnauthorized, "agent reports need a MICA-issued TLS client certificate")
		return
	}
	leaf := r.TLS.VerifiedChains[0][0]
	sum := sha256.Sum256(leaf.Raw)
	rec, err := s.store.CertificateByFingerprint(r.Context(), hex.EncodeToString(sum[:]))
	if err != nil || rec.EffectiveState(s.now()) != inventory.StateIssued {
		s.audit(r, inventory.Event{Actor: "agent:" + truncate(leaf.Subject.CommonName, 64), Action: "agent.report", Outcome: "denied"})
		writeError(w, http.StatusForbidden, "client certificate is not a valid MICA-issued agent identity")
		return
	}
	host, reason := agentHost(leaf)
	if reason != "" {
		s.audit(r, inventory.Event{Actor: "agent:" + truncate(leaf.Subject.CommonName, 64), Action: "agent.report", Outcome: "denied",
			Details: mustJSON(map[string]string{"reason": reason})})
		writeError(w, http.StatusForbidden, "client certificate does not name a host: "+reason)
		return
	}
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

// dnsShapedHost is a common name that reads as a DNS host name.
var dnsShapedHost = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// agentHost is the host a certificate proves, bound to its full identity:
// a common name that reads as a host name or IP address counts only when
// the certificate also carries it as a subjectAltName (compared by
// meaning: DNS case-insensitively, IP by value), and the host is then
// written in that canonical form. A CN-only certificate proves exactly its
// subject, never a DNS name: a profile that lets devices choose their CN
// must not let one report sightings as payments.example.com. Any other
// common name is recorded as it is. reason is non-empty on refusal.
func agentHost(c *x509.Certificate) (host, reason string) {
	cn := strings.TrimSpace(c.Subject.CommonName)
	if cn == "" {
		return "", "it has no common name"
	}
	if a, err := netip.ParseAddr(cn); err == nil {
		a = a.Unmap()
		for _, ip := range c.IPAddresses {
			if b, ok := netip.AddrFromSlice(ip); ok && b.Unmap() == a {
				return a.String(), ""
			}
		}
		return "", "its common name " + cn + " is not one of its IP address subjectAltNames"
	}
	name := strings.TrimSuffix(strings.ToLower(cn), ".")
	if !dnsShapedHost.MatchString(name) {
		return cn, ""
	}
	for _, d := range c.DNSNames {
		if strings.TrimSuffix(strings.ToLower(d), ".") == name {
			return name, ""
		}
	}
	return "", "its common name " + truncate(cn, 64) + " is not one of its DNS subjectAltNames"
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
