package ca

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// Check outcomes.
const (
	CheckPass = "pass"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// Check is one line of the compliance report: what was evaluated, the
// outcome, the evidence, and the controls it maps to (ISO/IEC 27002:2022
// 8.24 "Use of cryptography", NIST SP 800-57 Part 1 Rev. 5 sections).
type Check struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Result   string   `json:"result"`
	Evidence []string `json:"evidence"`
	Controls []string `json:"controls"`
}

// ComplianceInput is the live state the report evaluates. The caller
// (cmd/mica) gathers it; evaluating is pure, so tests feed it directly.
type ComplianceInput struct {
	Now        time.Time
	Keys       []inventory.Key
	Issuers    []inventory.Issuer
	Profiles   map[string]Profile
	Warning    time.Duration // rotation alert lead time
	AuditCount int           // events checked by VerifyEvents
	AuditErr   error         // VerifyEvents result
	LastBackup time.Time     // last verified backup; zero: none recorded
	BackupMax  time.Duration // policy: the newest backup may be this old

	// People (compliance_more.go).
	Users        []UserState
	MaxAdmins    int           // default 3
	DormantAfter time.Duration // default 90 days

	// Revocation status service: the latest full CRL of every serving
	// issuer (nil: none published) and OCSP coverage.
	CRLs         map[string]*inventory.CRL
	OCSP         []inventory.OCSPCoverage
	OCSPMaxAge   time.Duration // policy: the oldest pre-signed response may be this old (default 24h)
	Discovered   []inventory.Discovered
	Expiring     []inventory.Certificate // issued certificates expiring soon (the caller's window)
	HaveDetailed bool                    // the caller gathered the fields above; false: those checks are skipped
}

// UserState is one UI/API account as the report sees it.
type UserState struct {
	Name      string
	Role      string
	Disabled  bool
	Created   time.Time
	LastLogin time.Time // zero: never logged in
}

// approvedKeyType reports whether an algorithm name meets SP 800-57 Part 1
// Table 2 for protection beyond 2030 (112-bit security at least).
func approvedKeyType(kt string) bool {
	switch kt {
	case "EC-P256", "EC-P384", "EC-P521", "Ed25519":
		return true
	}
	var bits int
	if _, err := fmt.Sscanf(kt, "RSA-%d", &bits); err == nil {
		return bits >= 2048
	}
	return false
}

// Compliance evaluates in against the key-management controls.
func Compliance(in ComplianceInput) []Check {
	var out []Check
	add := func(id, title string, controls []string, result string, ev ...string) {
		if len(ev) == 0 {
			ev = []string{"nothing to report"}
		}
		out = append(out, Check{ID: id, Title: title, Result: result, Evidence: ev, Controls: controls})
	}

	// Algorithms and sizes, of MICA's own keys and of what profiles accept.
	res, ev := CheckPass, []string{}
	for _, k := range in.Keys {
		if k.Status == inventory.KeyDestroyed {
			continue
		}
		if !approvedKeyType(k.Algorithm) {
			res = CheckFail
			ev = append(ev, fmt.Sprintf("key %s is %s", k.ID, k.Algorithm))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(in.Profiles)) {
		for _, kt := range in.Profiles[name].KeyTypes {
			if !approvedKeyType(kt) {
				res = CheckFail
				ev = append(ev, fmt.Sprintf("profile %s accepts %s subject keys", name, kt))
			}
		}
	}
	if res == CheckPass {
		ev = append(ev, fmt.Sprintf("%d keys and %d profiles use approved algorithms of 112-bit strength or more", len(in.Keys), len(in.Profiles)))
	}
	add("algorithms", "Algorithms and key sizes meet policy", []string{"ISO/IEC 27002:2022 8.24", "NIST SP 800-57 Pt1 §5.6.1-5.6.2"}, res, ev...)

	// Cryptoperiods.
	res, ev = CheckPass, nil
	for _, k := range in.Keys {
		if k.Status != inventory.KeyActive {
			continue
		}
		switch {
		case k.RotationDue == nil:
			res = worst(res, CheckWarn)
			ev = append(ev, fmt.Sprintf("key %s (%s) has no cryptoperiod", k.ID, k.Class))
		case !in.Now.Before(*k.RotationDue):
			res = CheckFail
			ev = append(ev, fmt.Sprintf("key %s is past its cryptoperiod (due %s)", k.ID, k.RotationDue.UTC().Format(time.DateOnly)))
		case k.RotationDue.Sub(in.Now) <= in.Warning:
			res = worst(res, CheckWarn)
			ev = append(ev, fmt.Sprintf("key %s is due for rotation on %s", k.ID, k.RotationDue.UTC().Format(time.DateOnly)))
		default:
			ev = append(ev, fmt.Sprintf("key %s within its cryptoperiod until %s", k.ID, k.RotationDue.UTC().Format(time.DateOnly)))
		}
	}
	add("cryptoperiods", "Active keys are within their cryptoperiods", []string{"ISO/IEC 27002:2022 8.24 (key lifecycle)", "NIST SP 800-57 Pt1 §5.3"}, res, ev...)

	// CA keys on an HSM, sensitive and never extractable; root offline.
	res, ev = CheckPass, nil
	rootOffline := CheckPass
	var rootEv []string
	for _, k := range in.Keys {
		if (k.Class != KeyClassIssuing && k.Class != KeyClassRoot) || k.Status == inventory.KeyDestroyed {
			continue
		}
		if k.Class == KeyClassRoot {
			if k.URI == "" {
				rootEv = append(rootEv, fmt.Sprintf("root %s: key not held by the online CA", k.ID))
			} else {
				rootOffline = CheckWarn
				rootEv = append(rootEv, fmt.Sprintf("root %s: key online at %s", k.ID, redactURI(k.URI)))
			}
			if k.URI == "" {
				continue
			}
		}
		var p hsm.Protection
		_ = json.Unmarshal(k.Protection, &p)
		switch {
		case p.NonExportable():
			ev = append(ev, fmt.Sprintf("%s: on token, sensitive, never extractable", k.ID))
		case p.Backend == "pkcs11":
			res = CheckFail
			ev = append(ev, fmt.Sprintf("%s: on token but %s", k.ID, p))
		default:
			res = worst(res, CheckWarn)
			ev = append(ev, fmt.Sprintf("%s: software key (%s)", k.ID, orNone(p.Backend)))
		}
	}
	add("hsm", "CA keys are generated and held in an HSM, non-extractable", []string{"ISO/IEC 27002:2022 8.24 (key generation and storage)", "NIST SP 800-57 Pt1 §6.2.2"}, res, ev...)
	add("root-offline", "The root key is kept offline", []string{"ISO/IEC 27002:2022 8.24", "NIST SP 800-57 Pt2 §3.2"}, rootOffline, rootEv...)

	// Audit trail.
	if in.AuditErr != nil {
		add("audit", "The audit hash chain is intact", []string{"ISO/IEC 27002:2022 8.15", "NIST SP 800-57 Pt2 §5 (accountability)"}, CheckFail, in.AuditErr.Error())
	} else {
		add("audit", "The audit hash chain is intact", []string{"ISO/IEC 27002:2022 8.15", "NIST SP 800-57 Pt2 §5 (accountability)"}, CheckPass, fmt.Sprintf("%d events verified", in.AuditCount))
	}

	// Backup.
	switch {
	case in.LastBackup.IsZero():
		add("backup", "A recently verified backup exists", []string{"ISO/IEC 27002:2022 8.13, 8.24 (key backup)", "NIST SP 800-57 Pt1 §8.2.2.1"}, CheckFail, "no verified backup has been recorded (mica backup verify FILE --data DIR)")
	case in.Now.Sub(in.LastBackup) > in.BackupMax:
		add("backup", "A recently verified backup exists", []string{"ISO/IEC 27002:2022 8.13, 8.24 (key backup)", "NIST SP 800-57 Pt1 §8.2.2.1"}, CheckFail,
			fmt.Sprintf("last verified backup %s, older than %s", in.LastBackup.UTC().Format(time.RFC3339), in.BackupMax))
	default:
		add("backup", "A recently verified backup exists", []string{"ISO/IEC 27002:2022 8.13, 8.24 (key backup)", "NIST SP 800-57 Pt1 §8.2.2.1"}, CheckPass,
			"last verified backup "+in.LastBackup.UTC().Format(time.RFC3339))
	}

	// Retired keys awaiting destruction.
	res, ev = CheckPass, nil
	for _, k := range in.Keys {
		if k.Status == inventory.KeyRetired && k.URI != "" {
			res = worst(res, CheckWarn)
			ev = append(ev, fmt.Sprintf("key %s is retired but its private key still exists (destroy it after its retention period)", k.ID))
		}
	}
	add("destruction", "Retired keys are destroyed", []string{"ISO/IEC 27002:2022 8.24 (key destruction)", "NIST SP 800-57 Pt1 §8.3.4"}, res, ev...)
	if in.HaveDetailed {
		out = append(out, moreChecks(in)...)
	}
	return out
}

func worst(a, b string) string {
	rank := map[string]int{CheckPass: 0, CheckWarn: 1, CheckFail: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func orNone(s string) string {
	if s == "" {
		return "protection unknown"
	}
	return strings.TrimSpace(s)
}
