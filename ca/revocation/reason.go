package revocation

import (
	"fmt"
	"strings"
)

// CRLReason codes (RFC 5280 §5.3.1). They are plain ints so they
// interchange with x509.RevocationListEntry.ReasonCode and
// golang.org/x/crypto/ocsp.Response.RevocationReason.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	// 7 is not assigned.
	ReasonRemoveFromCRL      = 8 // delta CRLs only
	ReasonPrivilegeWithdrawn = 9
	ReasonAACompromise       = 10
)

// reasonNames are the ASN.1 identifiers; they double as the CLI/API
// spelling so an operator types what openssl prints.
var reasonNames = [...]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonRemoveFromCRL:        "removeFromCRL",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
	ReasonAACompromise:         "aACompromise",
}

// ReasonName returns the RFC 5280 identifier for a reason code, or
// "reason(N)" for a code that has none.
func ReasonName(r int) string {
	if r >= 0 && r < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", r)
}

// ParseReason maps an RFC 5280 identifier (case-insensitive, so
// "keycompromise" from a shell works) to its code.
func ParseReason(s string) (int, error) {
	for code, name := range reasonNames {
		if name != "" && strings.EqualFold(name, s) {
			return code, nil
		}
	}
	return 0, fmt.Errorf("revocation: unknown revocation reason %q", s)
}

// checkReason rejects codes that must not appear: 7 is unassigned, and
// removeFromCRL only means something in a delta CRL (RFC 5280 §5.3.1).
func checkReason(r int, allowRemove bool) error {
	switch {
	case r < 0 || r > ReasonAACompromise || r == 7:
		return fmt.Errorf("revocation: invalid reason code %d", r)
	case r == ReasonRemoveFromCRL && !allowRemove:
		return fmt.Errorf("revocation: reason removeFromCRL is only valid in a delta CRL")
	}
	return nil
}
