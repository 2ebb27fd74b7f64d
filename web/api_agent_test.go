package web_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/web"
)

// TestAgentReportIdentity drives POST /api/v1/agent/report over mutual
// TLS: the host a report is recorded under is bound to the client
// certificate's full identity. A CN-only certificate whose CN reads as a
// host name (which a profile that lets devices choose their CN issues
// without checking that name) must not report as that host; a CN that is
// also a SAN is recorded in canonical (lower-case) form.
func TestAgentReportIdentity(t *testing.T) {
	t.Parallel()
	st := inventorytest.SQLite(t)
	ctx := context.Background()
	inventorytest.Issuer(t, st, "ca")
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agent test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	root, _ := x509.ParseCertificate(rootDER)

	// agentCert signs a client certificate under root and records it in
	// the store as issued, as the CA would.
	agentCert := func(cn string, dns []string, ips []net.IP) tls.Certificate {
		t.Helper()
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		rec := inventory.Certificate{IssuerID: "ca", Serial: inventorytest.RandomSerial(t), CommonName: cn,
			NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second), Profile: "device", Protocol: "est"}
		for _, d := range dns {
			rec.SANs = append(rec.SANs, "dns:"+strings.ToLower(d))
		}
		for _, ip := range ips {
			rec.SANs = append(rec.SANs, "ip:"+ip.String())
		}
		serial, _ := new(big.Int).SetString(rec.Serial, 16)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
			DNSNames: dns, IPAddresses: ips, NotBefore: rec.NotBefore, NotAfter: rec.NotAfter,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, root, key.Public(), rootKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.ReserveCertificate(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		if err := st.CompleteCertificate(ctx, "ca", rec.Serial, der, "", inventory.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}

	r := chi.NewRouter()
	web.New(st, &fakeRevoker{store: st}, slog.New(slog.DiscardHandler)).Mount(r, chi.NewRouter())
	srv := httptest.NewUnstartedServer(r)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// The certificate every report says it found, to look its sightings up.
	seen := inventorytest.DER(t, &inventory.Certificate{Serial: inventorytest.RandomSerial(t), CommonName: "seen.test",
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, nil)
	seenFP := sha256.Sum256(seen)

	tests := []struct {
		name     string
		cert     tls.Certificate
		want     int
		location string // the host part recorded, when accepted
	}{
		{"CN-only certificate named like a host", agentCert("payments.example.com", nil, nil), 403, ""},
		{"CN is a host name the SANs do not carry", agentCert("web01.example.test", []string{"web02.example.test"}, nil), 403, ""},
		{"CN-only IP address", agentCert("192.0.2.10", nil, nil), 403, ""},
		{"CN is a SAN, in another case", agentCert("Web03.Example.TEST", []string{"web03.example.test"}, nil), 200, "web03.example.test:/srv/a.pem"},
		{"CN is an IP SAN", agentCert("192.0.2.11", nil, []net.IP{net.ParseIP("192.0.2.11")}), 200, "192.0.2.11:/srv/a.pem"},
		{"CN-only certificate with a non-host subject", agentCert("Device 17", nil, nil), 200, "Device 17:/srv/a.pem"},
	}
	for _, tc := range tests {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
			Certificates: []tls.Certificate{tc.cert}}}}
		body, _ := json.Marshal(web.AgentReport{Found: []web.AgentFound{{Path: "/srv/a.pem", Chain: [][]byte{seen}}}})
		resp, err := client.Post(srv.URL+"/api/v1/agent/report", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: report = %d %s, want %d", tc.name, resp.StatusCode, raw, tc.want)
			continue
		}
		if tc.location == "" {
			continue
		}
		inst, err := st.Installations(ctx, hex.EncodeToString(seenFP[:]))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, in := range inst {
			found = found || in.Location == tc.location
		}
		if !found {
			t.Errorf("%s: no sighting at %q in %+v", tc.name, tc.location, inst)
		}
	}
	// Nothing was recorded for the refused hosts.
	inst, _ := st.Installations(ctx, hex.EncodeToString(seenFP[:]))
	for _, in := range inst {
		if strings.HasPrefix(in.Location, "payments.example.com:") || strings.HasPrefix(in.Location, "web01.") || strings.HasPrefix(in.Location, "192.0.2.10:") {
			t.Errorf("a refused report was recorded at %s", in.Location)
		}
	}
}
