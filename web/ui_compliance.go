package web

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// compliancePage: GET /ui/compliance — explains the report and offers to
// run it; running writes an audit event, so it is a POST.
func (s *Server) compliancePage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "compliance", "Compliance", "", (*ca.Report)(nil))
}

// uiRunCompliance: POST /ui/compliance — runs the report and shows it.
func (s *Server) uiRunCompliance(w http.ResponseWriter, r *http.Request) {
	if s.keys == nil {
		s.render(w, r, http.StatusServiceUnavailable, "compliance", "Compliance", "The compliance report is not available on this server.", (*ca.Report)(nil))
		return
	}
	actor := ""
	if u := uiUser(r.Context()); u != nil {
		actor = "user:" + u.Name
	}
	rep, err := s.keys.Compliance(r.Context(), complianceEvent(actor, "ui", sourceOf(r)))
	if err != nil {
		s.log.Error("compliance report", "err", err)
		s.render(w, r, http.StatusServiceUnavailable, "compliance", "Compliance", "The compliance report could not be evaluated.", (*ca.Report)(nil))
		return
	}
	s.render(w, r, http.StatusOK, "compliance", "Compliance", "", rep)
}

// complianceEvent is the audit event of one report run.
func complianceEvent(actor, protocol, source string) inventory.Event {
	return inventory.Event{Actor: actor, Action: "report.compliance", Protocol: protocol, Source: source, Object: "report:compliance", Outcome: "ok"}
}

// protectionText summarises a key's protection as its backend reported it.
func protectionText(backend string, raw json.RawMessage) string {
	switch backend {
	case "config":
		return "secret in configuration"
	case "db-sealed":
		return "sealed in the database"
	case "memory":
		return "process memory, short-lived"
	case "offline":
		return "offline"
	}
	var p hsm.Protection
	if len(raw) == 0 || json.Unmarshal(raw, &p) != nil || p.Backend == "" {
		return "unknown"
	}
	if p.Backend == "pkcs11" {
		if p.NonExportable() {
			return "HSM: on token, sensitive, never extractable"
		}
		return "HSM: " + p.String()
	}
	if p.Encrypted {
		return "software, encrypted file"
	}
	return "software"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
