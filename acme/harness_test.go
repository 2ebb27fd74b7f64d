package acme_test

// The in-process harness: a real CA (software keys, SQLite), the ACME
// server on an httptest TLS listener, a loopback DNS server that resolves
// every name to 127.0.0.1 and serves the TXT records tests set, an http-01
// responder and a tls-alpn-01 responder. Clients are golang.org/x/crypto/acme.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/acme/acmetest"
	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
)

type testEnv struct {
	t      testing.TB
	store  *inventory.Store
	ca     *ca.CA
	srv    *httptest.Server
	dns    *acmetest.DNS
	root   *x509.Certificate
	tokens sync.Map // http-01 token → key authorization
	alpn   sync.Map // SNI → *tls.Certificate
	acme   *acme.Server
	opts   acme.Options // what acme was started with
}

// newEnv builds everything; edit adjusts the acme options.
func newEnv(t testing.TB, st *inventory.Store, edit func(*acme.Options)) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &testEnv{t: t, store: st, dns: acmetest.NewDNS(t)}
	uri, pass := hsmtest.SoftKMS(t)
	keys, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	if _, err := ca.Init(ctx, ca.InitOptions{Store: st, Keys: keys, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if e.ca, err = ca.New(ctx, ca.Options{Store: st, Keys: keys}); err != nil {
		t.Fatal(err)
	}
	e.root = e.ca.Root()

	h01 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")
		if v, ok := e.tokens.Load(tok); ok {
			if to, ok := strings.CutPrefix(v.(string), "redirect:"); ok {
				http.Redirect(w, r, to, http.StatusFound)
				return
			}
			_, _ = w.Write([]byte(v.(string)))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(h01.Close)
	alpnLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		NextProtos: []string{"acme-tls/1"},
		GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c, ok := e.alpn.Load(hi.ServerName); ok {
				return c.(*tls.Certificate), nil
			}
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alpnLn.Close() })
	go func() {
		for {
			c, err := alpnLn.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()

	sealer, err := acme.NewEABSealer(ctx, keys, []byte("test-eab-secret"))
	if err != nil {
		t.Fatal(err)
	}
	opts := acme.Options{CA: e.ca, Store: st, EABSealer: sealer,
		Validation: acme.ValidationOptions{HTTP01Port: port(t, h01.Listener.Addr()), TLSALPN01Port: port(t, alpnLn.Addr()),
			DNSResolver: e.dns.Addr, Timeout: 10 * time.Second,
			// The responders are on loopback, which validation refuses
			// by default (TestServeDefaults*).
			AllowNetworks: []string{"127.0.0.0/8", "::1/128"}},
		FinalizeWait: 10 * time.Second}
	if edit != nil {
		edit(&opts)
	}
	e.opts = opts
	if e.acme, err = acme.New(ctx, opts); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	e.acme.Mount(r, nil)
	e.srv = httptest.NewUnstartedServer(r)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

func port(t testing.TB, a net.Addr) int {
	t.Helper()
	return a.(*net.TCPAddr).Port
}

func (e *testEnv) dir(profile string) string { return e.srv.URL + "/acme/" + profile + "/directory" }

// client returns a registered x/crypto/acme client on the default profile.
func (e *testEnv) client(ctx context.Context) *xacme.Client {
	e.t.Helper()
	c := e.newClient(newKey(e.t), "default")
	if _, err := c.Register(ctx, &xacme.Account{Contact: []string{"mailto:ops@a.test"}}, xacme.AcceptTOS); err != nil {
		e.t.Fatalf("Register: %v", err)
	}
	return c
}

func (e *testEnv) newClient(key crypto.Signer, profile string) *xacme.Client {
	return &xacme.Client{Key: key, DirectoryURL: e.dir(profile), HTTPClient: e.srv.Client(), UserAgent: "mica-test"}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csr makes a CSR for names ("1.2.3.4" becomes an IP SAN).
func csr(t testing.TB, key crypto.Signer, names ...string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// solve answers one challenge of type typ in every pending authorization
// of o and waits for the order to become ready.
func (e *testEnv) solve(ctx context.Context, c *xacme.Client, o *xacme.Order, typ string) *xacme.Order {
	e.t.Helper()
	for _, zurl := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, zurl)
		if err != nil {
			e.t.Fatalf("GetAuthorization: %v", err)
		}
		if z.Status == xacme.StatusValid {
			continue
		}
		var ch *xacme.Challenge
		for _, x := range z.Challenges {
			if x.Type == typ {
				ch = x
			}
		}
		if ch == nil {
			e.t.Fatalf("authorization for %s offers no %s challenge", z.Identifier.Value, typ)
		}
		switch typ {
		case "http-01":
			v, _ := c.HTTP01ChallengeResponse(ch.Token)
			e.tokens.Store(ch.Token, v)
		case "dns-01":
			v, _ := c.DNS01ChallengeRecord(ch.Token)
			e.dns.SetTXT("_acme-challenge."+z.Identifier.Value, v)
		case "tls-alpn-01":
			cert, err := c.TLSALPN01ChallengeCert(ch.Token, z.Identifier.Value)
			if err != nil {
				e.t.Fatal(err)
			}
			sni := z.Identifier.Value
			if ip := net.ParseIP(sni); ip != nil {
				sni, _ = dnsReverse(ip)
			}
			e.alpn.Store(sni, &cert)
		}
		if _, err := c.Accept(ctx, ch); err != nil {
			e.t.Fatalf("Accept: %v", err)
		}
		if _, err := c.WaitAuthorization(ctx, zurl); err != nil {
			e.t.Fatalf("WaitAuthorization(%s): %v", z.Identifier.Value, err)
		}
	}
	o, err := c.WaitOrder(ctx, o.URI)
	if err != nil {
		e.t.Fatalf("WaitOrder: %v", err)
	}
	return o
}

// issue runs a whole order for names with challenge typ.
func (e *testEnv) issue(ctx context.Context, c *xacme.Client, typ string, names ...string) []*x509.Certificate {
	e.t.Helper()
	var ids []xacme.AuthzID
	for _, n := range names {
		if net.ParseIP(n) != nil {
			ids = append(ids, xacme.AuthzID{Type: "ip", Value: n})
		} else {
			ids = append(ids, xacme.AuthzID{Type: "dns", Value: n})
		}
	}
	o, err := c.AuthorizeOrder(ctx, ids)
	if err != nil {
		e.t.Fatalf("AuthorizeOrder: %v", err)
	}
	o = e.solve(ctx, c, o, typ)
	ders, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(e.t, newKey(e.t), names...), true)
	if err != nil {
		e.t.Fatalf("CreateOrderCert: %v", err)
	}
	var certs []*x509.Certificate
	for _, d := range ders {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			e.t.Fatal(err)
		}
		certs = append(certs, cert)
	}
	return certs
}

// verify checks the chain up to the root for name.
func (e *testEnv) verify(certs []*x509.Certificate, name string) {
	e.t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(e.root)
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
		e.t.Fatalf("issued chain does not verify for %s: %v", name, err)
	}
}

// dnsReverse is the reverse-DNS name of an IP, as tls-alpn-01 sends for
// IP identifiers (RFC 8738 section 6).
func dnsReverse(ip net.IP) (string, error) {
	name, err := reverseaddr(ip)
	return strings.TrimSuffix(name, "."), err
}

func reverseaddr(ip net.IP) (string, error) {
	if v4 := ip.To4(); v4 != nil {
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", v4[3], v4[2], v4[1], v4[0]), nil
	}
	var b strings.Builder
	for i := len(ip) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "%x.%x.", ip[i]&0xf, ip[i]>>4)
	}
	return b.String() + "ip6.arpa.", nil
}

// newEnvOnCA starts a second ACME server (a "replica") on a's store and CA.
func newEnvOnCA(t testing.TB, a *testEnv) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b := &testEnv{t: t, store: a.store, ca: a.ca, root: a.root, dns: a.dns}
	var err error
	if b.acme, err = acme.New(ctx, acme.Options{CA: a.ca, Store: a.store, Validation: a.opts.Validation}); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	b.acme.Mount(r, nil)
	b.srv = httptest.NewUnstartedServer(r)
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	return b
}
