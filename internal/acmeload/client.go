package acmeload

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
)

// Options describe a load run.
type Options struct {
	Directory string         // the ACME directory URL
	RootCAs   *x509.CertPool // nil: the CA's TLS certificate is not checked (loopback benchmarks)
	HTTP01    *HTTP01        // where key authorizations are published
	Domain    string         // order names are oN-cM.<Domain>; empty: "bench.test"
	// OrderTimeout bounds one order; 0: 60 s.
	OrderTimeout time.Duration
}

// Client is one ACME account with its own connection pool and CSR key,
// reused for every order it runs.
type Client struct {
	id   int
	acme *acme.Client
	key  crypto.Signer // certificate key, reused: the benchmark measures the CA, not key generation
	opts *Options
}

// NewClients registers n accounts concurrently (a handful at a time).
func NewClients(ctx context.Context, opts *Options, n int) ([]*Client, error) {
	cs := make([]*Client, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cs[i], errs[i] = newClient(ctx, opts, i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cs, nil
}

func newClient(ctx context.Context, opts *Options, id int) (*Client, error) {
	akey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ckey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: opts.RootCAs, InsecureSkipVerify: opts.RootCAs == nil}, //nolint:gosec // loopback benchmark
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &Client{id: id, key: ckey, opts: opts, acme: &acme.Client{
		Key:          akey,
		DirectoryURL: opts.Directory,
		HTTPClient:   &http.Client{Transport: tr, Timeout: 60 * time.Second},
		UserAgent:    "mica-acmeload",
	}}
	if _, err := c.acme.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		return nil, fmt.Errorf("client %d: register: %w", id, err)
	}
	return c, nil
}

var orderSeq atomic.Int64

// Order runs one full order for a fresh name and returns the chain's
// leaf DER.
func (c *Client) Order(ctx context.Context) ([]byte, error) {
	to := c.opts.OrderTimeout
	if to == 0 {
		to = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	domain := c.opts.Domain
	if domain == "" {
		domain = "bench.test"
	}
	name := fmt.Sprintf("o%d-c%d.%s", orderSeq.Add(1), c.id, domain)
	o, err := c.acme.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	for _, u := range o.AuthzURLs {
		if err := c.authorize(ctx, u); err != nil {
			return nil, err
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
	}, c.key)
	if err != nil {
		return nil, err
	}
	// CreateOrderCert finalizes, polls while the order is processing
	// and downloads the chain.
	ders, _, err := c.acme.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	if len(ders) == 0 {
		return nil, errors.New("finalize: empty chain")
	}
	return ders[0], nil
}

// authorize answers the http-01 challenge of one authorization and polls
// until it is valid. It polls itself (5 ms, doubling to 250 ms) rather
// than with WaitAuthorization, which sleeps a whole second (or the
// server's Retry-After, in whole seconds) between polls and would measure
// the sleep, not the CA. Both CAs under test get the same schedule.
func (c *Client) authorize(ctx context.Context, url string) error {
	z, err := c.acme.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	var ch *acme.Challenge
	for _, x := range z.Challenges {
		if x.Type == "http-01" {
			ch = x
		}
	}
	if ch == nil {
		return errors.New("authorization: no http-01 challenge offered")
	}
	ka, err := c.acme.HTTP01ChallengeResponse(ch.Token)
	if err != nil {
		return err
	}
	c.opts.HTTP01.Set(ch.Token, ka)
	defer c.opts.HTTP01.Delete(ch.Token)
	if _, err := c.acme.Accept(ctx, ch); err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	wait := 5 * time.Millisecond
	for {
		z, err := c.acme.GetAuthorization(ctx, url)
		if err != nil {
			return fmt.Errorf("authorization poll: %w", err)
		}
		switch z.Status {
		case acme.StatusValid:
			return nil
		case acme.StatusInvalid, acme.StatusDeactivated, acme.StatusExpired, acme.StatusRevoked:
			return fmt.Errorf("authorization %s", z.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// Run drives the first n clients for d: each runs orders back to back
// until d has passed (an order started before then is completed). It
// returns the latencies of the orders that succeeded, the number that
// failed and the first failure, and the wall time from start until the
// last order finished.
func Run(ctx context.Context, clients []*Client, d time.Duration) Result {
	res := Result{Clients: len(clients)}
	start := time.Now()
	deadline := start.Add(d)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var failed int
			var first error
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if _, err := c.Order(ctx); err != nil {
					failed++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			defer mu.Unlock()
			res.Latencies = append(res.Latencies, lat...)
			res.Errors += failed
			if first != nil && res.FirstError == "" {
				res.FirstError = first.Error()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}
