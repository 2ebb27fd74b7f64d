package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
)

func TestProfileValidation(t *testing.T) {
	t.Parallel()
	base := Profile{DNS: []string{"*"}, ExtKeyUsage: []string{"serverAuth"}, MaxLifetime: 90 * day}
	with := func(f func(*Profile)) Profile { p := base; f(&p); return p }
	tests := []struct {
		name    string
		profile string
		p       Profile
		wantMsg string // empty: valid
	}{
		{"valid", "web", base, ""},
		{"bad name", "Web Servers", base, `profile "Web Servers": name`},
		{"name mismatch", "web", with(func(p *Profile) { p.Name = "www" }), `profile "web": name: is "www"`},
		{"unknown EKU", "web", with(func(p *Profile) { p.ExtKeyUsage = []string{"serverAuth", "webAuth"} }), `profile "web": ext_key_usage: unknown extended key usage "webAuth"`},
		{"no EKU", "web", with(func(p *Profile) { p.ExtKeyUsage = nil }), `profile "web": ext_key_usage: is empty`},
		{"unknown KU", "web", with(func(p *Profile) { p.KeyUsage = []string{"digitalSignatures"} }), `profile "web": key_usage: unknown key usage "digitalSignatures"`},
		{"CA KU", "web", with(func(p *Profile) { p.KeyUsage = []string{"keyCertSign"} }), `profile "web": key_usage: "keyCertSign" is for CA certificates`},
		{"bad CIDR", "web", with(func(p *Profile) { p.IPRanges = []string{"10.0.0.0/33"} }), `profile "web": ip_ranges: "10.0.0.0/33" is not a CIDR`},
		{"bad DNS pattern", "web", with(func(p *Profile) { p.DNS = []string{"*.exa mple.com"} }), `profile "web": dns: pattern "*.exa mple.com"`},
		{"bad email pattern", "web", with(func(p *Profile) { p.Emails = []string{"example.com"} }), `profile "web": emails:`},
		{"unknown key type", "web", with(func(p *Profile) { p.KeyTypes = []string{"EC-P256", "RSA-1024"} }), `profile "web": key_types: unknown key type "RSA-1024"`},
		{"default over max", "web", with(func(p *Profile) { p.DefaultLifetime = 100 * day }), `profile "web": default_lifetime: 100d is longer than max_lifetime 90d`},
		{"no max", "web", with(func(p *Profile) { p.MaxLifetime = 0 }), `profile "web": max_lifetime: must be set`},
		{"negative backdate", "web", with(func(p *Profile) { p.Backdate = -time.Second }), `profile "web": backdate: is negative`},
		{"no names", "web", with(func(p *Profile) { p.DNS = nil }), `profile "web": dns/ip_ranges/uris/emails/common_names`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileProfiles(map[string]Profile{tc.profile: tc.p})
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("compileProfiles(%s) = %v, want nil", tc.name, err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(UserMessage(err), tc.wantMsg) {
				t.Fatalf("compileProfiles(%s) = %v, want ErrConfig containing %q", tc.name, err, tc.wantMsg)
			}
		})
	}

	// New reports profile errors too.
	env := newTestEnv(t, hsm.ECP256, nil)
	_, err := New(context.Background(), Options{Store: env.store, Keys: env.keys, Profiles: map[string]Profile{"web": tests[3].p}, Logger: discardLogger()})
	if !errors.Is(err, ErrConfig) || !strings.Contains(UserMessage(err), "webAuth") {
		t.Errorf("New(bad profile) = %v, want ErrConfig naming webAuth", err)
	}
}

func TestProfileDefaultsApplied(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, hsm.ECP256, nil)
	if got := env.ca.ProfileNames(); !slices.Equal(got, []string{"client", "device", "server"}) {
		t.Errorf("ProfileNames = %v", got)
	}
	p, ok := env.ca.Profile("server")
	if !ok || p.MaxLifetime != 397*day || p.DefaultLifetime != 90*day || p.Backdate != time.Minute || len(p.KeyTypes) != 5 {
		t.Errorf("Profile(server) = %+v, %t", p, ok)
	}
	if _, ok := env.ca.Profile("nope"); ok {
		t.Errorf("Profile(nope) found")
	}
	iss, err := env.ca.Issue(context.Background(), Request{CSR: makeCSR(t, subjectKey(t, "EC-P256"), "dev1"), Profile: "device"})
	if err != nil {
		t.Fatal(err)
	}
	if got := iss.Certificate.NotAfter.Sub(iss.Certificate.NotBefore); got != 365*day {
		t.Errorf("device lifetime = %v, want 365d", got)
	}
	if want := testNow.Add(-time.Minute); !iss.Certificate.NotBefore.Equal(want) {
		t.Errorf("notBefore = %v, want now-1m = %v", iss.Certificate.NotBefore, want)
	}
}

func TestNameMatching(t *testing.T) {
	t.Parallel()
	pol, err := compileProfile("p", Profile{
		DNS:         []string{"*.corp.test", "exact.test"},
		IPRanges:    []string{"10.0.0.0/8", "fd00::/8", "192.0.2.7"},
		URIs:        []string{"spiffe://corp.test/*"},
		Emails:      []string{"*@corp.test", "bob@home.test"},
		CommonNames: []string{"dev-*"},
		ExtKeyUsage: []string{"clientAuth"}, MaxLifetime: day,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   identifier
		want bool
	}{
		{identifier{idDNS, "a.corp.test"}, true},
		{identifier{idDNS, "a.b.corp.test"}, true},
		{identifier{idDNS, "corp.test"}, false},
		{identifier{idDNS, "xcorp.test"}, false},
		{identifier{idDNS, "*.corp.test"}, true},
		{identifier{idDNS, "*.a.corp.test"}, true},
		{identifier{idDNS, "*.test"}, false},
		{identifier{idDNS, "exact.test"}, true},
		{identifier{idDNS, "*.exact.test"}, false},
		{identifier{idIP, "10.255.0.1"}, true},
		{identifier{idIP, "11.0.0.1"}, false},
		{identifier{idIP, "fd12::1"}, true},
		{identifier{idIP, "192.0.2.7"}, true},
		{identifier{idIP, "192.0.2.8"}, false},
		{identifier{idURI, "spiffe://corp.test/ns/a"}, true},
		{identifier{idURI, "spiffe://evil.test/corp.test/"}, false},
		{identifier{idEmail, "ann@CORP.test"}, true},
		{identifier{idEmail, "bob@home.test"}, true},
		{identifier{idEmail, "eve@home.test"}, false},
	} {
		if got := pol.allowIdentifier(tc.id); got != tc.want {
			t.Errorf("allow(%s) = %t, want %t", tc.id, got, tc.want)
		}
	}
	if !pol.allowCN("DEV-17") || pol.allowCN("printer-1") {
		t.Errorf("allowCN: dev-* pattern misapplied")
	}
	if !pol.ipRanges[2].Contains(netip.MustParseAddr("192.0.2.7")) {
		t.Errorf("a bare IP in ip_ranges is not a host prefix")
	}
}

func TestGlob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "anything/at/all", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"spiffe://x/*", "spiffe://x/", true},
		{"*b*", "aaa", false},
		{"**", "x", true},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false}, // no exponential blow-up
	} {
		if got := glob(tc.pat, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %t, want %t", tc.pat, tc.s, got, tc.want)
		}
	}
}

func TestKeyUsageForKeyTypes(t *testing.T) {
	t.Parallel()
	server, _ := compileProfile("server", DefaultProfiles()["server"])
	client, _ := compileProfile("client", DefaultProfiles()["client"])
	custom, _ := compileProfile("c", Profile{DNS: []string{"*"}, ExtKeyUsage: []string{"serverAuth"}, MaxLifetime: day,
		KeyUsage: []string{"digitalSignature", "keyEncipherment", "keyAgreement"}})
	ds, ke, ka := x509.KeyUsageDigitalSignature, x509.KeyUsageKeyEncipherment, x509.KeyUsageKeyAgreement
	for _, tc := range []struct {
		p    *policy
		kt   string
		want x509.KeyUsage
	}{
		{server, "RSA-2048", ds | ke},
		{server, "EC-P256", ds},
		{client, "RSA-2048", ds},
		{custom, "RSA-2048", ds | ke},
		{custom, "EC-P256", ds | ka},
		{custom, "Ed25519", ds},
	} {
		if got := tc.p.keyUsageFor(tc.kt); got != tc.want {
			t.Errorf("keyUsageFor(%s, %s) = %b, want %b", tc.p.Name, tc.kt, got, tc.want)
		}
	}
}
