package acme

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// ValidationOptions configure challenge validation.
//
// The network policy applies to the address actually dialed (after DNS,
// on every redirect), so a name that resolves into a denied network is
// refused even when its DNS changes between lookups. By default only
// public addresses are reached: loopback, link-local (cloud metadata),
// RFC 1918, CGNAT, unique-local, multicast and the other networks of
// NonPublicNetworks are refused unless AllowNetworks lists them (the
// exact rules: docs/acme.md, "Network policy"). `mica dev` allows them all.
type ValidationOptions struct {
	HTTP01Port    int           `yaml:"http01_port,omitempty"`    // 0: 80
	TLSALPN01Port int           `yaml:"tlsalpn01_port,omitempty"` // 0: 443
	DNSResolver   string        `yaml:"dns_resolver,omitempty"`   // HOST:PORT for TXT, A and AAAA; empty: the system's
	Workers       int           `yaml:"workers,omitempty"`        // 0: 16
	Queue         int           `yaml:"queue,omitempty"`          // 0: 1024 pending validations
	Timeout       time.Duration `yaml:"timeout,omitempty"`        // per validation; 0: 30s
	// AllowNetworks are CIDRs: when set, only addresses in them; a
	// non-public network (NonPublicNetworks) is reached only when listed
	// here itself or in part. Empty: any public address.
	AllowNetworks []string `yaml:"allow_networks,omitempty"`
	DenyNetworks  []string `yaml:"deny_networks,omitempty"` // CIDRs refused whatever else says; checked first
	// Resolver, when set and DNSResolver is empty, answers the A, AAAA and
	// TXT lookups instead of the system's: `mica dev` injects one that
	// maps development names to loopback. Not configurable in YAML.
	Resolver *net.Resolver `yaml:"-" json:"-"`
}

// job is one queued validation.
type job struct {
	authz   inventory.ACMEAuthz
	chall   inventory.ACMEChallenge
	keyAuth string
	account string        // account URL: logs, and CAA accounturi ("" when unknown)
	caa     []string      // the profile's CAA identities; empty: no CAA check
	done    chan struct{} // closed when the outcome is recorded
}

// validator runs validations on a bounded pool of workers.
type validator struct {
	s        *Server
	opts     ValidationOptions
	jobs     chan job
	policy   networkPolicy
	resolver *net.Resolver
	caa      *caaChecker // nil until a profile asks for CAA
	wg       sync.WaitGroup
}

func newValidator(ctx context.Context, s *Server, o ValidationOptions) (*validator, error) {
	if o.HTTP01Port == 0 {
		o.HTTP01Port = 80
	}
	if o.TLSALPN01Port == 0 {
		o.TLSALPN01Port = 443
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	policy, err := newNetworkPolicy(o.AllowNetworks, o.DenyNetworks)
	if err != nil {
		return nil, err
	}
	v := &validator{s: s, opts: o, jobs: make(chan job, o.Queue), resolver: net.DefaultResolver, policy: policy}
	if o.Resolver != nil {
		v.resolver = o.Resolver
	}
	if o.DNSResolver != "" {
		if _, _, err := net.SplitHostPort(o.DNSResolver); err != nil {
			return nil, fmt.Errorf("acme: DNS resolver %q is not HOST:PORT", o.DNSResolver)
		}
		v.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, o.DNSResolver)
		}}
	}
	for _, p := range s.profiles {
		if len(p.CAAIdentities) > 0 {
			var err error
			if v.caa, err = newCAAChecker(o.DNSResolver); err != nil {
				return nil, err
			}
			v.caa.log = s.log
			break
		}
	}
	for range o.Workers {
		v.wg.Add(1)
		go v.work(ctx)
	}
	return v, nil
}

// enqueue queues j without blocking; false means the queue is full.
func (v *validator) enqueue(j job) bool {
	select {
	case v.jobs <- j:
		return true
	default:
		return false
	}
}

func (v *validator) work(ctx context.Context) {
	defer v.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-v.jobs:
			v.run(ctx, j)
		}
	}
}

// run validates one challenge and records the outcome on the challenge
// and its authorization.
func (v *validator) run(ctx context.Context, j job) {
	defer close(j.done)
	vctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	var p *Problem
	switch j.chall.Type {
	case challHTTP01:
		p = v.http01(vctx, j)
	case challDNS01:
		p = v.dns01(vctx, j)
	case challTLSALPN01:
		p = v.tlsALPN01(vctx, j)
	default:
		p = malformed("unknown challenge type %s", j.chall.Type)
	}
	if p == nil && len(j.caa) > 0 && j.authz.Identifier.Type == "dns" && v.caa != nil {
		p = v.caa.check(vctx, j.caa, caaRequest{name: j.authz.Identifier.Value, wildcard: j.authz.Wildcard,
			method: j.chall.Type, accountURI: j.account})
	}
	cancel()
	if p != nil && p.Identifier == nil {
		p.Identifier = &Identifier{Type: j.authz.Identifier.Type, Value: j.authz.Identifier.Value}
	}
	now := v.s.now()
	u := inventory.ACMEChallengeUpdate{Status: statusValid, Validated: &now}
	authz := statusValid
	if p != nil {
		b, _ := json.Marshal(p)
		u = inventory.ACMEChallengeUpdate{Status: statusInvalid, Error: b}
		authz = statusInvalid
		v.s.log.Info("acme: challenge failed", "type", j.chall.Type, "identifier", j.authz.Identifier.Value, "account", j.account, "problem", p.Type, "detail", p.Detail)
	}
	// A fresh context: the outcome must be written even when the
	// validation used up its time.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := v.s.store.UpdateACMEChallenge(wctx, j.chall.ID, []string{statusProcessing}, u); err != nil {
		if errors.Is(err, inventory.ErrConflict) {
			// Another worker (a replica that re-queued it) recorded first.
			v.s.log.Info("acme: challenge outcome already recorded", "challenge", j.chall.ID)
			return
		}
		v.s.log.Error("acme: recording a challenge outcome", "err", err)
		return
	}
	v.s.m.validation(j.chall.Type, p)
	if err := v.s.store.UpdateACMEAuthz(wctx, j.authz.ID, []string{statusPending}, authz); err != nil && !errors.Is(err, inventory.ErrConflict) {
		v.s.log.Error("acme: recording an authorization outcome", "err", err)
	}
	ev := inventory.Event{Actor: accountActor(j.account, j.authz.AccountID), Action: "acme.challenge.validate",
		Object: "acme-challenge:" + j.chall.ID, Outcome: "ok"}
	details := map[string]any{"type": j.chall.Type, "identifier": j.authz.Identifier.Type + ":" + j.authz.Identifier.Value,
		"authorization": j.authz.ID, "wildcard": j.authz.Wildcard}
	if p != nil {
		ev.Outcome, details["problem"], details["detail"] = "denied", p.Type, p.Detail
	}
	v.s.audit(wctx, ev, details)
}

var errDeniedNetwork = errors.New("the address is in a network the CA may not connect to")

// dialer resolves through the configured resolver and refuses denied
// addresses at connect time, so every address tried (each A/AAAA record,
// each redirect) passes the policy, not only the first lookup's.
func (v *validator) dialer() *net.Dialer {
	return &net.Dialer{
		Timeout:  10 * time.Second,
		Resolver: v.resolver,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !v.policy.allows(ap.Addr()) {
				v.s.log.Info("acme: validation refused an address by the network policy (acme.validation.allow_networks)", "address", address)
				return errDeniedNetwork
			}
			return nil
		},
	}
}
