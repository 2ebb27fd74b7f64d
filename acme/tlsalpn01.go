package acme

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"net"
	"net/http"
	"net/netip"
	"strconv"
)

// idPeACMEIdentifier is id-pe-acmeIdentifier (RFC 8737 section 6.1).
var idPeACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

const acmeTLSProtocol = "acme-tls/1"

// tlsALPN01 connects with ALPN acme-tls/1 and checks the self-signed
// certificate the client presents (RFC 8737 section 3): exactly the
// identifier as its only SAN, and a critical acmeIdentifier extension
// holding SHA-256 of the key authorization. For IP identifiers the SNI is
// the reverse-DNS name (RFC 8738 section 6).
func (v *validator) tlsALPN01(ctx context.Context, j job) *Problem {
	id := j.authz.Identifier
	sni := id.Value
	var ip netip.Addr
	if id.Type == "ip" {
		ip, _ = netip.ParseAddr(id.Value)
		sni = reverseName(ip)
	}
	d := &tls.Dialer{NetDialer: v.dialer(), Config: &tls.Config{
		ServerName:         sni,
		NextProtos:         []string{acmeTLSProtocol},
		InsecureSkipVerify: true, //nolint:gosec // the certificate is checked below, not against a trust store
		MinVersion:         tls.VersionTLS12,
	}}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(id.Value, strconv.Itoa(v.opts.TLSALPN01Port)))
	if err != nil {
		return v.connProblem(j, "tls-alpn-01", err)
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	if cs.NegotiatedProtocol != acmeTLSProtocol {
		return problem(probTLS, http.StatusBadRequest, "tls-alpn-01: the server did not negotiate %s", acmeTLSProtocol)
	}
	if len(cs.PeerCertificates) == 0 {
		return problem(probTLS, http.StatusBadRequest, "tls-alpn-01: no certificate")
	}
	cert := cs.PeerCertificates[0]
	if !onlyName(cert, id.Type, id.Value, ip) {
		return problem(probUnauthorized, http.StatusForbidden, "tls-alpn-01: the certificate must name exactly %s", id.Value)
	}
	sum := sha256.Sum256([]byte(j.keyAuth))
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(idPeACMEIdentifier) {
			continue
		}
		var got []byte
		if rest, err := asn1.Unmarshal(ext.Value, &got); err != nil || len(rest) != 0 {
			return problem(probUnauthorized, http.StatusForbidden, "tls-alpn-01: malformed acmeIdentifier extension")
		}
		if !ext.Critical {
			return problem(probUnauthorized, http.StatusForbidden, "tls-alpn-01: the acmeIdentifier extension must be critical")
		}
		if !bytes.Equal(got, sum[:]) {
			return problem(probIncorrectResponse, http.StatusForbidden, "tls-alpn-01: the acmeIdentifier does not match the key authorization")
		}
		return nil
	}
	return problem(probUnauthorized, http.StatusForbidden, "tls-alpn-01: no acmeIdentifier extension")
}

func onlyName(c *x509.Certificate, typ, value string, ip netip.Addr) bool {
	if typ == "ip" {
		return len(c.DNSNames) == 0 && len(c.IPAddresses) == 1 && c.IPAddresses[0].Equal(net.IP(ip.AsSlice()))
	}
	return len(c.IPAddresses) == 0 && len(c.DNSNames) == 1 && c.DNSNames[0] == value
}

// reverseName is the in-addr.arpa / ip6.arpa name of ip.
func reverseName(ip netip.Addr) string {
	const hexDigits = "0123456789abcdef"
	if ip.Is4() {
		b := ip.As4()
		return strconv.Itoa(int(b[3])) + "." + strconv.Itoa(int(b[2])) + "." + strconv.Itoa(int(b[1])) + "." + strconv.Itoa(int(b[0])) + ".in-addr.arpa"
	}
	b := ip.As16()
	out := make([]byte, 0, 72)
	for i := len(b) - 1; i >= 0; i-- {
		out = append(out, hexDigits[b[i]&0xf], '.', hexDigits[b[i]>>4], '.')
	}
	return string(out) + "ip6.arpa"
}
