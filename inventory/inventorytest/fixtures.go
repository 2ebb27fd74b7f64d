package inventorytest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// Issuer stores an active issuer named id with a throwaway self-signed CA
// certificate and returns it. It is for tests that need certificates to
// hang off something; the key is discarded.
func Issuer(t testing.TB, s *inventory.Store, id string) *inventory.Issuer {
	t.Helper()
	key := newKey(t)
	now := time.Now().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Test CA " + id},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("inventorytest: create issuer certificate: %v", err)
	}
	x, _ := x509.ParseCertificate(der)
	iss := &inventory.Issuer{
		ID: id, IsRoot: true, Subject: x.Subject.String(), KeyType: "EC-P256",
		SKI: hex.EncodeToString(x.SubjectKeyId), NotBefore: x.NotBefore, NotAfter: x.NotAfter,
		Status: "active", DER: der,
	}
	if err := s.PutIssuer(context.Background(), iss, inventory.Event{Actor: "test", Protocol: "cli"}); err != nil {
		t.Fatalf("inventorytest: put issuer %s: %v", id, err)
	}
	return iss
}

// DER returns a certificate carrying c's serial, common name, SANs and
// validity, signed by a throwaway key, with key as its subject key (a
// fresh P-256 key when nil). It stands in for what the ca package would
// sign, so CompleteCertificate's checks pass.
func DER(t testing.TB, c *inventory.Certificate, key crypto.Signer) []byte {
	t.Helper()
	serial, ok := new(big.Int).SetString(mustSerial(t, c.Serial), 16)
	if !ok {
		t.Fatalf("inventorytest: serial %q", c.Serial)
	}
	if key == nil {
		key = newKey(t)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: c.CommonName},
		NotBefore:    c.NotBefore,
		NotAfter:     c.NotAfter,
	}
	for _, san := range c.SANs {
		kind, v, _ := strings.Cut(san, ":")
		switch kind {
		case "dns":
			tmpl.DNSNames = append(tmpl.DNSNames, v)
		case "ip":
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(v))
		case "email":
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, v)
		case "uri":
			if u, err := url.Parse(v); err == nil {
				tmpl.URIs = append(tmpl.URIs, u)
			}
		}
	}
	signer := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: pkix.Name{CommonName: "Test signer"}}, key.Public(), signer)
	if err != nil {
		t.Fatalf("inventorytest: create certificate: %v", err)
	}
	return der
}

// Issue reserves c (IssuerID, Serial, NotBefore and NotAfter must be set)
// and completes it with DER(t, c, nil), returning the stored certificate.
func Issue(t testing.TB, s *inventory.Store, c inventory.Certificate) *inventory.Certificate {
	t.Helper()
	ctx := context.Background()
	if err := s.ReserveCertificate(ctx, &c); err != nil {
		t.Fatalf("inventorytest: reserve %s: %v", c.Serial, err)
	}
	if err := s.CompleteCertificate(ctx, c.IssuerID, c.Serial, DER(t, &c, nil), "", inventory.Event{Actor: "test"}); err != nil {
		t.Fatalf("inventorytest: complete %s: %v", c.Serial, err)
	}
	got, err := s.Certificate(ctx, c.IssuerID, c.Serial)
	if err != nil {
		t.Fatalf("inventorytest: read back %s: %v", c.Serial, err)
	}
	return got
}

// RandomSerial returns a fresh 128-bit serial in canonical form.
func RandomSerial(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[0] &= 0x7f // positive, like a real CA's serials
	b[0] |= 0x01 // no leading zero nibble pair, so the length is stable
	return mustSerial(t, bigHex(b[:]))
}

func mustSerial(t testing.TB, s string) string {
	t.Helper()
	n, err := inventory.NormalizeSerial(s)
	if err != nil {
		t.Fatalf("inventorytest: %v", err)
	}
	return n
}

func bigHex(b []byte) string { return new(big.Int).SetBytes(b).Text(16) }

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
