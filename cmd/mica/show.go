package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mica-pki/mica/inventory"
)

func encodeDER(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// printCert writes the human view of one certificate: the inventory record
// (state with expiry derived, who asked, how) and, once issued, the fields
// decoded from the DER itself, so what is shown is what was signed.
func printCert(w io.Writer, ct *inventory.Certificate, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	state := string(ct.EffectiveState(now))
	if ct.State == inventory.StateRevoked {
		state += fmt.Sprintf(" (%s, %s)", ct.RevocationReason, fmtTime(deref(ct.RevokedAt)))
	}
	row("Serial", displaySerial(ct.Serial)+"  ("+colonHex(ct.Serial)+")")
	row("Issuer", ct.IssuerID)
	row("State", state)
	row("Subject", ct.Subject)
	row("Names", strings.Join(ct.SANs, ", "))
	row("Profile", ct.Profile)
	row("Not before", fmtTime(ct.NotBefore))
	row("Not after", fmtTime(ct.NotAfter))
	row("Key type", ct.KeyType)
	row("Key SHA-256", ct.PublicKeySHA256)
	if len(ct.DER) > 0 {
		row("Fingerprint", "SHA-256 "+fingerprint(ct.DER))
		if cert, err := x509.ParseCertificate(ct.DER); err == nil {
			row("Issuer DN", cert.Issuer.String())
			row("Signature", cert.SignatureAlgorithm.String())
			row("Key usage", strings.Join(keyUsageNames(cert.KeyUsage), ", "))
			row("Ext key usage", strings.Join(extKeyUsageNames(cert.ExtKeyUsage), ", "))
			row("CRL", strings.Join(cert.CRLDistributionPoints, ", "))
			row("OCSP", strings.Join(cert.OCSPServer, ", "))
			row("CA issuers", strings.Join(cert.IssuingCertificateURL, ", "))
		} else {
			row("Decode error", err.Error())
		}
	}
	row("Requester", ct.Requester)
	row("Protocol", ct.Protocol)
	row("Predecessor", displayOptionalSerial(ct.Predecessor))
	row("Superseded by", displayOptionalSerial(ct.SupersededBy))
	row("Created", fmtTime(ct.CreatedAt))
	row("Updated", fmtTime(ct.UpdatedAt))
	tw.Flush()
}

func displayOptionalSerial(s string) string {
	if s == "" {
		return ""
	}
	return displaySerial(s)
}

func keyUsageNames(ku x509.KeyUsage) []string {
	names := []struct {
		bit  x509.KeyUsage
		name string
	}{
		{x509.KeyUsageDigitalSignature, "digitalSignature"},
		{x509.KeyUsageContentCommitment, "contentCommitment"},
		{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
		{x509.KeyUsageDataEncipherment, "dataEncipherment"},
		{x509.KeyUsageKeyAgreement, "keyAgreement"},
		{x509.KeyUsageCertSign, "keyCertSign"},
		{x509.KeyUsageCRLSign, "cRLSign"},
		{x509.KeyUsageEncipherOnly, "encipherOnly"},
		{x509.KeyUsageDecipherOnly, "decipherOnly"},
	}
	var out []string
	for _, n := range names {
		if ku&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func extKeyUsageNames(ekus []x509.ExtKeyUsage) []string {
	known := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageServerAuth:      "serverAuth",
		x509.ExtKeyUsageClientAuth:      "clientAuth",
		x509.ExtKeyUsageCodeSigning:     "codeSigning",
		x509.ExtKeyUsageEmailProtection: "emailProtection",
		x509.ExtKeyUsageTimeStamping:    "timeStamping",
		x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
	}
	var out []string
	for _, e := range ekus {
		if n, ok := known[e]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("eku(%d)", e))
		}
	}
	return out
}

// fingerprint is the SHA-256 of der in the colon-separated upper-case hex
// that `openssl x509 -fingerprint -sha256` prints, so operators can compare
// the two by eye.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return colonHex(hex.EncodeToString(sum[:]))
}

// colonHex turns "0a1b2c" into "0A:1B:2C".
func colonHex(h string) string {
	h = strings.ToUpper(h)
	if len(h)%2 == 1 {
		h = "0" + h
	}
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// displaySerial prints a serial the way `openssl x509 -noout -serial`
// does: upper case, whole bytes. It is inventory.FormatSerial, the one
// form the API, UI and logs print too.
func displaySerial(s string) string { return inventory.FormatSerial(s) }

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
