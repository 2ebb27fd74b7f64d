package ca

import (
	"slices"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// TestComplianceDetailedChecks: each of the people, revocation-service,
// discovery and expiry checks passes on a sound state and flags the
// matching weakness with its control.
func TestComplianceDetailedChecks(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	issuer := inventory.Issuer{ID: "issuing", KeyURI: "pkcs11:object=issuing", Status: StatusActive, NotBefore: now.Add(-day), NotAfter: now.Add(365 * day)}
	sound := func() ComplianceInput {
		return ComplianceInput{
			Now: now, HaveDetailed: true, Issuers: []inventory.Issuer{issuer},
			Users: []UserState{
				{Name: "alice", Role: inventory.RoleAdmin, Created: now.Add(-400 * day), LastLogin: now.Add(-day)},
				{Name: "audit", Role: inventory.RoleAuditor, Created: now.Add(-10 * day)},
			},
			CRLs:       map[string]*inventory.CRL{"issuing": {IssuerID: "issuing", Number: 4, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(23 * time.Hour)}},
			OCSP:       []inventory.OCSPCoverage{{IssuerID: "issuing", Oldest: now.Add(-2 * time.Hour), Responses: 10}},
			Discovered: []inventory.Discovered{{CommonName: "a.test", KeyType: "EC-P256", SigAlg: "ECDSA-SHA256"}},
			Expiring: []inventory.Certificate{{IssuerID: "issuing", Serial: "1", CommonName: "fresh.test", State: inventory.StateIssued,
				NotBefore: now.Add(-10 * day), NotAfter: now.Add(80 * day)}},
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*ComplianceInput)
		check   string
		result  string
		control string
	}{
		{"no admin", func(in *ComplianceInput) { in.Users = in.Users[1:] }, "users-roles", CheckFail, "ISO/IEC 27002:2022 8.2 (privileged access)"},
		{"too many admins", func(in *ComplianceInput) {
			for _, n := range []string{"b", "c", "d"} {
				in.Users = append(in.Users, UserState{Name: n, Role: inventory.RoleAdmin, Created: now, LastLogin: now})
			}
		}, "users-roles", CheckWarn, "ISO/IEC 27002:2022 8.5 (secure authentication)"},
		{"user without role", func(in *ComplianceInput) {
			in.Users = append(in.Users, UserState{Name: "x", Created: now})
		}, "users-roles", CheckFail, "NIST SP 800-57 Pt2 §3.1 (roles)"},
		{"dormant", func(in *ComplianceInput) { in.Users[0].LastLogin = now.Add(-91 * day) }, "dormant-accounts", CheckWarn, "ISO/IEC 27002:2022 5.18 (access rights review)"},
		{"never used", func(in *ComplianceInput) { in.Users[1].Created = now.Add(-100 * day) }, "dormant-accounts", CheckWarn, "ISO/IEC 27002:2022 8.5"},
		{"no CRL", func(in *ComplianceInput) { in.CRLs = nil }, "crl-freshness", CheckFail, "ISO/IEC 27002:2022 8.24 (revocation)"},
		{"stale CRL", func(in *ComplianceInput) { in.CRLs["issuing"].NextUpdate = now.Add(-time.Minute) }, "crl-freshness", CheckFail, "RFC 5280 §5"},
		{"old OCSP", func(in *ComplianceInput) { in.OCSP[0].Oldest = now.Add(-30 * time.Hour) }, "ocsp-freshness", CheckFail, "RFC 6960"},
		{"missing OCSP", func(in *ComplianceInput) { in.OCSP[0].Missing = 2 }, "ocsp-freshness", CheckWarn, "NIST SP 800-57 Pt1 §8.3.5"},
		{"weak discovered", func(in *ComplianceInput) {
			in.Discovered = append(in.Discovered, inventory.Discovered{CommonName: "old.test", KeyType: "RSA-1024", KeyBits: 1024})
		}, "discovery", CheckFail, "ISO/IEC 27002:2022 8.16 (monitoring)"},
		{"SHA-1 discovered", func(in *ComplianceInput) {
			in.Discovered = append(in.Discovered, inventory.Discovered{CommonName: "sha1.test", KeyType: "RSA-2048", SigAlg: "SHA1-RSA"})
		}, "discovery", CheckFail, "NIST SP 800-57 Pt1 §5.6.1-5.6.2"},
		{"external", func(in *ComplianceInput) { in.Discovered[0].External = true }, "discovery", CheckWarn, "ISO/IEC 27002:2022 8.24"},
		{"renewal window passed", func(in *ComplianceInput) { in.Expiring[0].NotAfter = now.Add(4 * day) }, "expiry-renewal", CheckWarn, "ISO/IEC 27002:2022 8.24 (certificate lifecycle)"},
		{"nearly expired", func(in *ComplianceInput) { in.Expiring[0].NotAfter = now.Add(day) }, "expiry-renewal", CheckFail, "NIST SP 800-57 Pt1 §5.3"},
		{"renewed", func(in *ComplianceInput) {
			in.Expiring[0].NotAfter = now.Add(day)
			in.Expiring[0].SupersededBy = "2"
		}, "expiry-renewal", CheckPass, "ISO/IEC 27002:2022 8.16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := sound()
			for _, c := range Compliance(in) {
				if c.Result != CheckPass && c.ID != "algorithms" && c.ID != "backup" && c.ID != "audit" {
					// key checks have no keys here; only the detailed ones must pass
					if slices.Contains([]string{"users-roles", "dormant-accounts", "crl-freshness", "ocsp-freshness", "discovery", "expiry-renewal"}, c.ID) {
						t.Fatalf("sound state: %s = %s %v", c.ID, c.Result, c.Evidence)
					}
				}
			}
			tc.edit(&in)
			var got *Check
			for _, c := range Compliance(in) {
				if c.ID == tc.check {
					got = &c
				}
			}
			if got == nil {
				t.Fatalf("check %s missing", tc.check)
			}
			if got.Result != tc.result || !slices.Contains(got.Controls, tc.control) || len(got.Evidence) == 0 {
				t.Errorf("%s = %s %v (evidence %v), want %s citing %q", tc.check, got.Result, got.Controls, got.Evidence, tc.result, tc.control)
			}
		})
	}
}
