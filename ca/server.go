package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// serverProfileName is the profile the HTTPS listener certificate is issued
// under; builtinServerProfile is used when the configured one would refuse
// the listener's own names (a "server" profile restricted to one domain
// must not stop MICA from serving on localhost).
const (
	serverProfileName  = "server"
	builtinServerName  = "mica-https"
	serverCertLifetime = 90 * day
)

var builtinServerProfile = Profile{
	Name:            builtinServerName,
	Description:     "MICA's own HTTPS listener certificate",
	DNS:             []string{"*"},
	IPRanges:        []string{"*"},
	ExtKeyUsage:     []string{"serverAuth"},
	KeyTypes:        []string{"EC-P256"},
	DefaultLifetime: serverCertLifetime,
	MaxLifetime:     serverCertLifetime,
}

// ServerCertificate issues the certificate for MICA's HTTPS listener: a
// fresh ECDSA P-256 key made in memory (it is a TLS key, not a CA key, and
// dies with the process), names "localhost", "127.0.0.1", "::1" plus names,
// issued through the normal Issue path (profile "server", protocol
// "server") so it is recorded and audited like any other certificate. It
// supersedes the newest listener certificate still issued (a restart's,
// or another replica's: they share the names).
func (c *CA) ServerCertificate(ctx context.Context, names []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, Wrap(ErrInternal, err, "generating the listener key failed")
	}
	all := []string{"localhost", "127.0.0.1", "::1"}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n != "" && !slices.Contains(all, strings.ToLower(n)) {
			all = append(all, strings.ToLower(n))
		}
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: all[0]}}
	for _, n := range all {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	// The first non-loopback name, if any, makes a more useful CN.
	if len(tmpl.DNSNames) > 1 {
		tmpl.Subject.CommonName = tmpl.DNSNames[1]
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return tls.Certificate{}, Wrap(ErrInternal, err, "making the listener CSR failed")
	}

	req := Request{CSR: csr, Profile: serverProfileName, Requester: "mica", Protocol: "server", Source: "localhost"}
	// The key lives only in memory, so a restart needs a new certificate;
	// the one it replaces is marked superseded (not left "issued") so the
	// inventory does not pile up one live-looking certificate per start.
	if prev, err := c.store.FindCertificates(ctx, inventory.CertFilter{Protocol: "server", Requester: "mica",
		States: []inventory.State{inventory.StateIssued}, Now: c.now(), Limit: 1}); err == nil && len(prev) == 1 {
		req.Predecessor = prev[0].IssuerID + "/" + prev[0].Serial
	}
	pol := c.profiles[serverProfileName]
	if pol == nil || !c.serverPolicyFits(pol, csr) {
		pol, err = compileProfile(builtinServerName, builtinServerProfile)
		if err != nil {
			return tls.Certificate{}, err
		}
		req.Profile = builtinServerName
	}
	// Near the issuing CA's end of life a shorter certificate beats no
	// listener at all.
	nb := c.now().UTC().Truncate(time.Second).Add(-pol.Backdate)
	na := nb.Add(pol.DefaultLifetime)
	if end := c.cur().issuerCert.NotAfter; na.After(end) {
		req.NotAfter = end
	}
	iss, err := c.issue(ctx, req, pol)
	if err != nil {
		return tls.Certificate{}, err
	}
	out := tls.Certificate{Certificate: [][]byte{iss.Certificate.Raw}, PrivateKey: key, Leaf: iss.Certificate}
	for _, ch := range iss.Chain {
		out.Certificate = append(out.Certificate, ch.Raw)
	}
	return out, nil
}

// serverPolicyFits reports whether the configured server profile would
// issue this CSR; the check is the same step 1 that Issue runs.
func (c *CA) serverPolicyFits(pol *policy, csr []byte) bool {
	if !slices.Contains(pol.eku, x509.ExtKeyUsageServerAuth) {
		return false
	}
	_, err := check(Request{CSR: csr}, pol, c.cur().issuerCert, c.now())
	return err == nil
}
