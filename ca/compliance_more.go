package ca

import (
	"fmt"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// Checks of the compliance report beyond the keys themselves: who may
// use them (ISO/IEC 27002 8.2, 8.5), whether relying parties get fresh
// revocation status (8.24, SP 800-57 Pt1 §5.3.6 / RFC 5280, RFC 6960),
// and what discovery and expiry tell about the certificates in use
// (8.16 monitoring; SP 800-57 Pt1 §5.6 for weak keys).

// Report defaults when the caller sets no policy.
const (
	DefaultMaxAdmins    = 3
	DefaultDormantAfter = 90 * day
	DefaultOCSPMaxAge   = 24 * time.Hour
)

var (
	ctlUsers     = []string{"ISO/IEC 27002:2022 8.2 (privileged access)", "ISO/IEC 27002:2022 8.5 (secure authentication)", "NIST SP 800-57 Pt2 §3.1 (roles)"}
	ctlDormant   = []string{"ISO/IEC 27002:2022 5.18 (access rights review)", "ISO/IEC 27002:2022 8.5", "NIST SP 800-57 Pt2 §3.1"}
	ctlCRL       = []string{"ISO/IEC 27002:2022 8.24 (revocation)", "NIST SP 800-57 Pt1 §8.3.5", "RFC 5280 §5"}
	ctlOCSP      = []string{"ISO/IEC 27002:2022 8.24 (revocation)", "NIST SP 800-57 Pt1 §8.3.5", "RFC 6960"}
	ctlDiscovery = []string{"ISO/IEC 27002:2022 8.16 (monitoring)", "ISO/IEC 27002:2022 8.24", "NIST SP 800-57 Pt1 §5.6.1-5.6.2"}
	ctlExpiry    = []string{"ISO/IEC 27002:2022 8.24 (certificate lifecycle)", "ISO/IEC 27002:2022 8.16", "NIST SP 800-57 Pt1 §5.3"}
)

func moreChecks(in ComplianceInput) []Check {
	var out []Check
	add := func(id, title string, controls []string, result string, ev []string) {
		if len(ev) == 0 {
			ev = []string{"nothing to report"}
		}
		out = append(out, Check{ID: id, Title: title, Result: result, Evidence: ev, Controls: controls})
	}
	maxAdmins := in.MaxAdmins
	if maxAdmins <= 0 {
		maxAdmins = DefaultMaxAdmins
	}
	dormant := in.DormantAfter
	if dormant <= 0 {
		dormant = DefaultDormantAfter
	}
	ocspMax := in.OCSPMaxAge
	if ocspMax <= 0 {
		ocspMax = DefaultOCSPMaxAge
	}

	// Administrators: at least one (someone can manage users and keys),
	// at most maxAdmins (least privilege); every account has a role.
	var admins []string
	res, ev := CheckPass, []string{}
	for _, u := range in.Users {
		if u.Disabled {
			continue
		}
		switch {
		case u.Role == inventory.RoleAdmin:
			admins = append(admins, u.Name)
		case !inventory.ValidRole(u.Role):
			res = CheckFail
			ev = append(ev, fmt.Sprintf("user %s has no valid role (%q)", u.Name, u.Role))
		}
	}
	switch {
	case len(admins) == 0:
		res = CheckFail
		ev = append(ev, "no enabled administrator account")
	case len(admins) > maxAdmins:
		res = worst(res, CheckWarn)
		ev = append(ev, fmt.Sprintf("%d administrators (%s), policy allows %d", len(admins), strings.Join(admins, ", "), maxAdmins))
	default:
		ev = append(ev, fmt.Sprintf("%d administrator(s): %s (policy 1-%d)", len(admins), strings.Join(admins, ", "), maxAdmins))
	}
	add("users-roles", "Administrators are few and every account has a role", ctlUsers, res, ev)

	// Dormant accounts: enabled, and no successful login within the
	// period (an account never used counts from its creation).
	res, ev = CheckPass, nil
	for _, u := range in.Users {
		if u.Disabled {
			continue
		}
		last, what := u.LastLogin, "last login"
		if last.IsZero() {
			last, what = u.Created, "never logged in; created"
		}
		if in.Now.Sub(last) > dormant {
			res = worst(res, CheckWarn)
			ev = append(ev, fmt.Sprintf("user %s (%s): %s %s", u.Name, u.Role, what, last.UTC().Format(time.DateOnly)))
		}
	}
	if res == CheckPass {
		ev = append(ev, fmt.Sprintf("%d enabled accounts, all used within %d days", countEnabled(in.Users), int(dormant/day)))
	}
	add("dormant-accounts", fmt.Sprintf("No account is dormant (no login for %d days)", int(dormant/day)), ctlDormant, res, ev)

	// CRL freshness: every serving issuer has a CRL whose nextUpdate has
	// not passed.
	res, ev = CheckPass, nil
	for _, is := range ServingOf(in.Issuers, in.Now) {
		crl := in.CRLs[is.ID]
		switch {
		case crl == nil:
			res = CheckFail
			ev = append(ev, fmt.Sprintf("issuer %s: no CRL published", is.ID))
		case !in.Now.Before(crl.NextUpdate):
			res = CheckFail
			ev = append(ev, fmt.Sprintf("issuer %s: CRL #%d is stale (nextUpdate %s)", is.ID, crl.Number, crl.NextUpdate.UTC().Format(time.RFC3339)))
		default:
			ev = append(ev, fmt.Sprintf("issuer %s: CRL #%d fresh until %s", is.ID, crl.Number, crl.NextUpdate.UTC().Format(time.RFC3339)))
		}
	}
	add("crl-freshness", "Every serving issuer's CRL is within its nextUpdate", ctlCRL, res, ev)

	// OCSP freshness: the oldest pre-signed response of an unexpired
	// certificate is younger than the policy; none is missing.
	res, ev = CheckPass, nil
	for _, o := range in.OCSP {
		switch {
		case o.Missing > 0:
			res = worst(res, CheckWarn)
			ev = append(ev, fmt.Sprintf("issuer %s: %d certificates without a pre-signed response (signed on request)", o.IssuerID, o.Missing))
		case o.Responses == 0:
			ev = append(ev, fmt.Sprintf("issuer %s: no unexpired certificates", o.IssuerID))
			continue
		}
		if o.Responses == 0 {
			continue
		}
		age := in.Now.Sub(o.Oldest)
		if age > ocspMax {
			res = CheckFail
			ev = append(ev, fmt.Sprintf("issuer %s: oldest response is %s old, policy %s", o.IssuerID, HumanDuration(age.Round(time.Minute)), HumanDuration(ocspMax)))
		} else {
			ev = append(ev, fmt.Sprintf("issuer %s: %d responses, oldest %s old (policy %s)", o.IssuerID, o.Responses, HumanDuration(age.Round(time.Minute)), HumanDuration(ocspMax)))
		}
	}
	add("ocsp-freshness", "Pre-signed OCSP responses are fresh", ctlOCSP, res, ev)

	// Discovery: weak keys or signatures anywhere, and certificates from
	// other issuers living on our hosts.
	res, ev = CheckPass, nil
	external := 0
	for _, d := range in.Discovered {
		if reason := weakDiscovered(d); reason != "" {
			res = CheckFail
			ev = append(ev, fmt.Sprintf("%s (%s, serial %s): %s", orNone(d.CommonName), d.Issuer, inventory.FormatSerial(d.Serial), reason))
		}
		if d.External {
			external++
		}
	}
	if external > 0 {
		res = worst(res, CheckWarn)
		ev = append(ev, fmt.Sprintf("%d certificates from other issuers found by discovery (review and claim or replace)", external))
	}
	if res == CheckPass {
		ev = append(ev, fmt.Sprintf("%d discovered certificates, none weak, none external", len(in.Discovered)))
	}
	add("discovery", "Discovery found no weak or external certificates", ctlDiscovery, res, ev)

	// Expiry without renewal: the renewal window (last third of the
	// lifetime) has passed and no successor exists; fail when under a
	// tenth of the lifetime is left.
	res, ev = CheckPass, nil
	for _, c := range in.Expiring {
		if c.State != inventory.StateIssued || c.SupersededBy != "" || !in.Now.Before(c.NotAfter) {
			continue
		}
		life := c.NotAfter.Sub(c.NotBefore)
		left := c.NotAfter.Sub(in.Now)
		switch {
		case left < life/10:
			res = CheckFail
		case left < life/3:
			res = worst(res, CheckWarn)
		default:
			continue
		}
		ev = append(ev, fmt.Sprintf("%s (%s/%s) expires %s with no renewal", orNone(c.CommonName), c.IssuerID, inventory.FormatSerial(c.Serial), c.NotAfter.UTC().Format(time.RFC3339)))
	}
	add("expiry-renewal", "No certificate is past its renewal window without a successor", ctlExpiry, res, ev)
	return out
}

// weakDiscovered says why a discovered certificate is weak, or "".
func weakDiscovered(d inventory.Discovered) string {
	kt := d.KeyType
	if strings.HasPrefix(strings.ToUpper(kt), "RSA") && d.KeyBits > 0 && !strings.Contains(kt, "-") {
		kt = fmt.Sprintf("RSA-%d", d.KeyBits)
	}
	if kt != "" && !approvedKeyType(kt) {
		return "key " + kt
	}
	sig := strings.ToUpper(d.SigAlg)
	if strings.Contains(sig, "MD5") || strings.Contains(sig, "SHA1") || strings.Contains(sig, "SHA-1") {
		return "signature " + d.SigAlg
	}
	return ""
}

func countEnabled(us []UserState) int {
	n := 0
	for _, u := range us {
		if !u.Disabled {
			n++
		}
	}
	return n
}

// Report is one run of the compliance report, as the CLI, the UI and the
// API present it.
type Report struct {
	Generated time.Time      `json:"generated"`
	Summary   map[string]int `json:"summary"` // checks per result
	Checks    []Check        `json:"checks"`
}

// NewReport evaluates in (Compliance) into a Report.
func NewReport(in ComplianceInput) *Report {
	r := &Report{Generated: in.Now.UTC(), Summary: map[string]int{CheckPass: 0, CheckWarn: 0, CheckFail: 0}, Checks: Compliance(in)}
	for _, c := range r.Checks {
		r.Summary[c.Result]++
	}
	return r
}
