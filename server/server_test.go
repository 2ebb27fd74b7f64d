package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// fakeStore is a hand-written Store.
type fakeStore struct {
	mu      sync.Mutex
	pingErr error
	issuers []inventory.Issuer
}

var _ Store = (*fakeStore)(nil)

func (f *fakeStore) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pingErr
}

func (f *fakeStore) Issuers(context.Context) ([]inventory.Issuer, error) {
	return f.issuers, nil
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// selfSigned makes a CA-flagged certificate usable both as the listener
// certificate and as a client CA in these tests.
func selfSigned(t *testing.T, cn string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}

type harness struct {
	srv    *Server
	store  *fakeStore
	logs   *syncBuffer
	https  string // base URL
	plain  string
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	serverCert, root := selfSigned(t, "server")
	h := &harness{store: &fakeStore{issuers: []inventory.Issuer{{ID: "issuing.v2", DER: root.Raw}}}, logs: &syncBuffer{}}
	opts := Options{
		Listen:         "127.0.0.1:0",
		HTTPListen:     "127.0.0.1:0",
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serverCert, nil },
		Store:          h.store,
		Logger:         slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MaxBodyBytes:   4096,
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.https = "https://" + srv.HTTPSAddr().String()
	h.plain = "http://" + srv.HTTPAddr().String()
	pool := x509.NewCertPool()
	pool.AddCert(root)
	h.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	return h
}

func (h *harness) get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := h.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestHealthzBothListeners(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	for _, base := range []string{h.https, h.plain} {
		if code, _, body := h.get(t, base+"/healthz"); code != 200 || string(body) != "ok\n" {
			t.Errorf("GET %s/healthz = %d %q, want 200 ok", base, code, body)
		}
	}
	h.store.mu.Lock()
	h.store.pingErr = errors.New("database is locked: secret internals")
	h.store.mu.Unlock()
	for _, base := range []string{h.https, h.plain} {
		code, _, body := h.get(t, base+"/healthz")
		if code != http.StatusServiceUnavailable || strings.Contains(string(body), "internals") {
			t.Errorf("GET %s/healthz with a failing store = %d %q, want 503 without the cause", base, code, body)
		}
	}
}

func TestCACertificate(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	want := h.store.issuers[0].DER
	code, hdr, body := h.get(t, h.plain+"/ca/issuing.v2.crt")
	if code != 200 || hdr.Get("Content-Type") != "application/pkix-cert" || !bytes.Equal(body, want) {
		t.Errorf("GET /ca/issuing.v2.crt = %d %q (%d bytes), want 200 application/pkix-cert with the DER", code, hdr.Get("Content-Type"), len(body))
	}
	if code, _, body := h.get(t, h.plain+"/ca/issuing.v2.pem"); code != 200 || !strings.HasPrefix(string(body), "-----BEGIN CERTIFICATE-----") {
		t.Errorf("GET /ca/issuing.v2.pem = %d %q", code, body)
	}
	for _, p := range []string{"/ca/nope.crt", "/ca/issuing.v2.der", "/ca/issuing.v2"} {
		if code, _, _ := h.get(t, h.plain+p); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
	// AIA is a plain-HTTP resource only.
	if code, _, _ := h.get(t, h.https+"/ca/issuing.v2.crt"); code != 404 {
		t.Errorf("GET https /ca/issuing.v2.crt = %d, want 404", code)
	}
}

func TestMountSeam(t *testing.T) {
	t.Parallel()
	h := start(t, func(o *Options) {
		o.Mount = []Mounter{MountFunc(func(https, plain chi.Router) {
			https.Get("/acme/x", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "acme") })
			plain.Get("/crl/{file}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "crl") })
		})}
	})
	cases := []struct {
		url  string
		code int
	}{
		{h.https + "/acme/x", 200}, {h.plain + "/acme/x", 404},
		{h.plain + "/crl/a.crl", 200}, {h.https + "/crl/a.crl", 404},
	}
	for _, c := range cases {
		if code, _, _ := h.get(t, c.url); code != c.code {
			t.Errorf("GET %s = %d, want %d", c.url, code, c.code)
		}
	}
}

func TestBodyCap(t *testing.T) {
	t.Parallel()
	var readErr error
	var mu sync.Mutex
	h := start(t, func(o *Options) {
		o.Mount = []Mounter{MountFunc(func(https, plain chi.Router) {
			https.Post("/echo", func(w http.ResponseWriter, r *http.Request) {
				_, err := io.ReadAll(r.Body)
				mu.Lock()
				readErr = err
				mu.Unlock()
				if IsBodyTooLarge(err) {
					http.Error(w, "too large", http.StatusRequestEntityTooLarge)
					return
				}
				fmt.Fprint(w, "ok")
			})
		})}
	})
	post := func(body io.Reader, size int64) int {
		req, _ := http.NewRequest("POST", h.https+"/echo", body)
		req.ContentLength = size
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(strings.NewReader("small"), 5); code != 200 {
		t.Errorf("small POST = %d, want 200", code)
	}
	big := strings.Repeat("x", 5000)
	if code := post(strings.NewReader(big), int64(len(big))); code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST with Content-Length over the cap = %d, want 413", code)
	}
	// Chunked (length unknown): the handler's read fails past the cap.
	if code := post(io.MultiReader(strings.NewReader(big)), -1); code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked POST over the cap = %d, want 413", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if !IsBodyTooLarge(readErr) {
		t.Errorf("handler read error = %v, want *http.MaxBytesError", readErr)
	}
}

func TestPanicRecoveryAndLogging(t *testing.T) {
	t.Parallel()
	h := start(t, func(o *Options) {
		o.Mount = []Mounter{MountFunc(func(https, plain chi.Router) {
			https.Post("/boom", func(w http.ResponseWriter, r *http.Request) { panic("internal state 0xdeadbeef") })
		})}
	})
	req, _ := http.NewRequest("POST", h.https+"/boom?token=querysecret", strings.NewReader("bodysecret"))
	req.Header.Set("Authorization", "Basic dXNlcjpoZWFkZXJzZWNyZXQ=")
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.Contains(string(body), "deadbeef") {
		t.Errorf("panicking handler = %d %q, want 500 without the panic value", resp.StatusCode, body)
	}
	// The server keeps serving.
	if code, _, _ := h.get(t, h.https+"/healthz"); code != 200 {
		t.Errorf("after panic /healthz = %d", code)
	}
	logs := h.logs.String()
	for _, want := range []string{"handler panic", "deadbeef", "method=POST", "path=/boom", "status=500", "remote=127.0.0.1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{"querysecret", "bodysecret", "dXNlcjpoZWFkZXJzZWNyZXQ", "Authorization"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.get(t, h.plain+"/ca/issuing.v2.crt")
	h.get(t, h.plain+"/ca/other.crt")
	for _, base := range []string{h.https, h.plain} {
		code, _, body := h.get(t, base+"/metrics")
		if code != 200 {
			t.Fatalf("GET %s/metrics = %d", base, code)
		}
		want := `mica_http_requests_total{code="200",listener="http",method="GET",route="/ca/{file}"} 1`
		if !strings.Contains(string(body), want) {
			t.Errorf("%s/metrics lacks %s", base, want)
		}
		if !strings.Contains(string(body), "mica_http_request_duration_seconds_bucket") {
			t.Errorf("%s/metrics lacks the duration histogram", base)
		}
	}
}

func TestTLSSettings(t *testing.T) {
	t.Parallel()
	clientCert, clientCA := selfSigned(t, "device")
	var mu sync.Mutex
	var peers []int
	h := start(t, func(o *Options) {
		o.ClientCAs = x509.NewCertPool()
		o.ClientCAs.AddCert(clientCA)
		o.Mount = []Mounter{MountFunc(func(https, plain chi.Router) {
			https.Get("/whoami", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				peers = append(peers, len(r.TLS.PeerCertificates))
				mu.Unlock()
			})
		})}
	})
	tr := h.client.Transport.(*http.Transport)

	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(h.https + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("TLS 1.1 handshake succeeded, want refusal")
	}

	// Client certificates are optional: both with and without work.
	h.get(t, h.https+"/whoami")
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, Certificates: []tls.Certificate{clientCert}}}}
	resp, err := withCert.Get(h.https + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(peers) != 2 || peers[0] != 0 || peers[1] != 1 {
		t.Errorf("peer certificates seen = %v, want [0 1]", peers)
	}
}

// TestClientCAsFunc: a trust anchor added to the pool while the server
// runs (a rotation's new issuing CA) is honoured at the next handshake;
// before that, and for a CA never added, the client is not verified.
func TestClientCAsFunc(t *testing.T) {
	t.Parallel()
	oldCert, oldCA := selfSigned(t, "device-old-ca")
	newCert, newCA := selfSigned(t, "device-new-ca")
	strangerCert, _ := selfSigned(t, "stranger")
	var pool atomic.Pointer[x509.CertPool]
	p := x509.NewCertPool()
	p.AddCert(oldCA)
	pool.Store(p)
	var mu sync.Mutex
	var peers []string
	h := start(t, func(o *Options) {
		o.ClientCAsFunc = pool.Load
		o.Mount = []Mounter{MountFunc(func(https, plain chi.Router) {
			https.Get("/whoami", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				if len(r.TLS.VerifiedChains) > 0 {
					peers = append(peers, r.TLS.VerifiedChains[0][0].Subject.CommonName)
				} else {
					peers = append(peers, "-")
				}
			})
		})}
	})
	roots := h.client.Transport.(*http.Transport).TLSClientConfig.RootCAs
	call := func(c tls.Certificate) error {
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{c}}}}
		defer cl.CloseIdleConnections()
		resp, err := cl.Get(h.https + "/whoami")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := call(oldCert); err != nil {
		t.Fatalf("client under the old CA: %v", err)
	}
	// The per-handshake config still negotiates HTTP/2.
	h2 := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if resp, err := h2.Get(h.https + "/healthz"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.ProtoMajor != 2 {
		t.Errorf("protocol with ClientCAsFunc = %s, want HTTP/2", resp.Proto)
	}
	h2.CloseIdleConnections()
	// Go clients send no certificate the server's CA list does not name,
	// so an untrusted client shows up as anonymous ("-"), never verified.
	if err := call(newCert); err != nil {
		t.Fatal(err)
	}
	p2 := x509.NewCertPool()
	p2.AddCert(oldCA)
	p2.AddCert(newCA)
	pool.Store(p2)
	if err := call(newCert); err != nil {
		t.Fatalf("client under the CA added while serving: %v", err)
	}
	if err := call(strangerCert); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(peers, ",") != "device-old-ca,-,device-new-ca,-" {
		t.Errorf("verified clients = %v", peers)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	h := start(t, func(o *Options) {
		o.ShutdownTimeout = 5 * time.Second
		o.Mount = []Mounter{MountFunc(func(https, plain chi.Router) {
			plain.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
				close(started)
				time.Sleep(300 * time.Millisecond)
				fmt.Fprint(w, "done")
			})
		})}
	})
	got := make(chan string, 1)
	go func() {
		resp, err := h.client.Get(h.plain + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	h.cancel()
	if err := <-h.done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	h.done <- nil // for the cleanup
	if body := <-got; body != "done" {
		t.Errorf("in-flight request got %q, want it to finish with \"done\"", body)
	}
	if _, err := net.DialTimeout("tcp", h.srv.HTTPAddr().String(), time.Second); err == nil {
		t.Error("listener still accepts after shutdown")
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	cert, _ := selfSigned(t, "x")
	get := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	if _, err := New(Options{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Store: &fakeStore{}}); err == nil {
		t.Error("New without GetCertificate succeeded")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = New(Options{Listen: "127.0.0.1:0", HTTPListen: ln.Addr().String(), GetCertificate: get, Store: &fakeStore{}})
	if err == nil || !strings.Contains(err.Error(), "HTTP listener") {
		t.Errorf("New on a busy port = %v, want an HTTP listener error", err)
	}
}

// protoErrors is a Mounter that claims /p/ for its own error format.
type protoErrors struct{}

func (protoErrors) Mount(https, _ chi.Router) {
	https.Post("/p/boom", func(http.ResponseWriter, *http.Request) { panic("internal state") })
	https.Post("/plain/boom", func(http.ResponseWriter, *http.Request) { panic("internal state") })
}

func (protoErrors) WriteError(w http.ResponseWriter, r *http.Request, status int, detail string) bool {
	if !strings.HasPrefix(r.URL.Path, "/p/") {
		return false
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"status":%d,"detail":%q}`, status, detail)
	return true
}

// TestErrorWriterSeam: the errors the middleware raises before any route
// (body over the cap, a recovered panic) are written by the front end that
// claims the path, in its format; other paths keep plain text.
func TestErrorWriterSeam(t *testing.T) {
	t.Parallel()
	h := start(t, func(o *Options) { o.Mount = []Mounter{protoErrors{}} })
	big := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		path, body string
		status     int
		ctype      string
	}{
		{"/p/anything", big, 413, "application/problem+json"},
		{"/p/boom", "", 500, "application/problem+json"},
		{"/plain/anything", big, 413, "text/plain; charset=utf-8"},
		{"/plain/boom", "", 500, "text/plain; charset=utf-8"},
	} {
		resp, err := h.client.Post(h.https+tc.path, "application/octet-stream", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ctype || strings.Contains(string(b), "internal state") {
			t.Errorf("POST %s: %d %q %s, want %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.status, tc.ctype)
		}
	}
}
