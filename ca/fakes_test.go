package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// fakeStore is an in-memory Store with the inventory's semantics for the
// calls ca makes. Failure injection: set the err* fields.
type fakeStore struct {
	mu      sync.Mutex
	issuers []inventory.Issuer
	certs   map[string]*inventory.Certificate // issuer/serial
	events  []inventory.Event

	errComplete error // returned by CompleteCertificate when set
	dupReserves int   // the next n reservations fail with ErrDuplicate
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{certs: map[string]*inventory.Certificate{}}
}

func key(issuer, serial string) string { return issuer + "/" + serial }

func (s *fakeStore) PutIssuer(_ context.Context, iss *inventory.Issuer, ev inventory.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, is := range s.issuers {
		if is.ID == iss.ID {
			return fmt.Errorf("%w: issuer %s", inventory.ErrDuplicate, iss.ID)
		}
	}
	s.issuers = append(s.issuers, *iss)
	s.events = append(s.events, ev)
	return nil
}

func (s *fakeStore) Issuers(context.Context) ([]inventory.Issuer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]inventory.Issuer(nil), s.issuers...), nil
}

func (s *fakeStore) ReserveCertificate(_ context.Context, c *inventory.Certificate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dupReserves > 0 {
		s.dupReserves--
		return fmt.Errorf("%w: injected", inventory.ErrDuplicate)
	}
	k := key(c.IssuerID, c.Serial)
	if _, ok := s.certs[k]; ok {
		return fmt.Errorf("%w: %s", inventory.ErrDuplicate, k)
	}
	c.ID = int64(len(s.certs) + 1)
	c.State = inventory.StateRequested
	cp := *c
	s.certs[k] = &cp
	return nil
}

func (s *fakeStore) CompleteCertificate(_ context.Context, issuerID, serial string, der []byte, fp string, ev inventory.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errComplete != nil {
		return s.errComplete
	}
	c, ok := s.certs[key(issuerID, serial)]
	if !ok {
		return inventory.ErrNotFound
	}
	if c.State != inventory.StateRequested {
		return inventory.ErrConflict
	}
	c.State, c.DER, c.FingerprintSHA256 = inventory.StateIssued, der, fp
	s.events = append(s.events, ev)
	return nil
}

func (s *fakeStore) FailCertificate(_ context.Context, issuerID, serial string, ev inventory.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.certs[key(issuerID, serial)]
	if !ok {
		return inventory.ErrNotFound
	}
	if c.State != inventory.StateRequested {
		return inventory.ErrConflict
	}
	c.State = inventory.StateFailed
	s.events = append(s.events, ev)
	return nil
}

func (s *fakeStore) Certificate(_ context.Context, issuerID, serial string) (*inventory.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.certs[key(issuerID, serial)]
	if !ok {
		return nil, inventory.ErrNotFound
	}
	cp := *c
	return &cp, nil
}

func (s *fakeStore) FindCertificates(_ context.Context, f inventory.CertFilter) ([]inventory.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []inventory.Certificate
	for _, c := range s.certs {
		if (f.Serial == "" || c.Serial == f.Serial) && (f.IssuerID == "" || c.IssuerID == f.IssuerID) {
			out = append(out, *c)
		}
	}
	return out, nil
}

func (s *fakeStore) RevokeCertificate(_ context.Context, issuerID, serial, reason string, at time.Time, ev inventory.Event) (*inventory.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.certs[key(issuerID, serial)]
	if !ok {
		return nil, inventory.ErrNotFound
	}
	if c.State != inventory.StateIssued && c.State != inventory.StateSuperseded {
		return nil, fmt.Errorf("%w: %s", inventory.ErrConflict, c.State)
	}
	c.State, c.RevocationReason, c.RevokedAt = inventory.StateRevoked, reason, &at
	s.events = append(s.events, ev)
	cp := *c
	return &cp, nil
}

func (s *fakeStore) AppendEvent(_ context.Context, ev inventory.Event) (inventory.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev.ID = int64(len(s.events) + 1)
	s.events = append(s.events, ev)
	return ev, nil
}

// count returns how many certificates are in state st.
func (s *fakeStore) count(st inventory.State) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.certs {
		if c.State == st {
			n++
		}
	}
	return n
}

// eventsWith returns the events with the given action and outcome.
func (s *fakeStore) eventsWith(action, outcome string) []inventory.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []inventory.Event
	for _, e := range s.events {
		if e.Action == action && e.Outcome == outcome {
			out = append(out, e)
		}
	}
	return out
}

// fakeKeys is an in-memory hsm.Backend. Keys are real software keys; URIs
// are "fake:{name}". failSign makes every signer fail.
type fakeKeys struct {
	mu       sync.Mutex
	keys     map[string]crypto.Signer
	failSign bool
}

var _ hsm.Backend = (*fakeKeys)(nil)

func newFakeKeys() *fakeKeys { return &fakeKeys{keys: map[string]crypto.Signer{}} }

func genKey(kt hsm.KeyType) (crypto.Signer, error) {
	switch kt {
	case hsm.ECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case hsm.ECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case hsm.RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case hsm.RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case hsm.RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case hsm.Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("%w: %s", hsm.ErrUnsupported, kt)
}

func (f *fakeKeys) CreateKey(_ context.Context, name string, kt hsm.KeyType) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.keys[name]; ok {
		return "", hsm.ErrExists
	}
	k, err := genKey(kt)
	if err != nil {
		return "", err
	}
	f.keys[name] = k
	return "fake:" + name, nil
}

func (f *fakeKeys) Signer(_ context.Context, uri string) (crypto.Signer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[strings.TrimPrefix(uri, "fake:")]
	if !ok {
		return nil, hsm.ErrNotFound
	}
	return &fakeSigner{Signer: k, keys: f}, nil
}

func (f *fakeKeys) PublicKey(ctx context.Context, uri string) (crypto.PublicKey, error) {
	s, err := f.Signer(ctx, uri)
	if err != nil {
		return nil, err
	}
	return s.Public(), nil
}

func (f *fakeKeys) Protection(context.Context, string) (hsm.Protection, error) {
	return hsm.Protection{Backend: "fake"}, nil
}

func (f *fakeKeys) Keys(context.Context) ([]hsm.KeyInfo, error) { return nil, nil }
func (f *fakeKeys) Close() error                                { return nil }

func (f *fakeKeys) DeleteKey(_ context.Context, uri string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := strings.TrimPrefix(uri, "fake:")
	if _, ok := f.keys[name]; !ok {
		return hsm.ErrNotFound
	}
	delete(f.keys, name)
	return nil
}

type fakeSigner struct {
	crypto.Signer
	keys *fakeKeys
}

func (s *fakeSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.keys.mu.Lock()
	fail := s.keys.failSign
	s.keys.mu.Unlock()
	if fail {
		return nil, errors.New("fake HSM: device removed")
	}
	return s.Signer.Sign(r, digest, opts)
}

// fixedClock is the injected clock of the unit tests.
var testNow = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func fixedClock() time.Time { return testNow }

// testCA builds a hierarchy with Init on fakes and a CA on top of it.
type testEnv struct {
	store *fakeStore
	keys  *fakeKeys
	init  *InitResult
	ca    *CA
}

var testURLs = URLs{CRLBase: "http://ca.test/crl/", OCSP: "http://ca.test/ocsp", CAIssuersBase: "http://ca.test/ca/"}

func newTestEnv(t testing.TB, issuerKey hsm.KeyType, mutate func(*Options)) *testEnv {
	t.Helper()
	ctx := context.Background()
	env := &testEnv{store: newFakeStore(), keys: newFakeKeys()}
	rootKey := hsm.ECP384
	if issuerKey == hsm.Ed25519 || strings.HasPrefix(string(issuerKey), "RSA") {
		rootKey = issuerKey
	}
	res, err := Init(ctx, InitOptions{
		Store: env.store, Keys: env.keys, RootKeyType: rootKey, IssuingKeyType: issuerKey,
		URLs: testURLs, Now: fixedClock, Actor: "test", Logger: discardLogger(),
	})
	if err != nil {
		t.Fatalf("Init(%s) = %v", issuerKey, err)
	}
	env.init = res
	opts := Options{Store: env.store, Keys: env.keys, URLs: testURLs, Now: fixedClock, Logger: discardLogger()}
	if mutate != nil {
		mutate(&opts)
	}
	env.ca, err = New(ctx, opts)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return env
}
