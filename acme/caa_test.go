package acme_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	xacme "golang.org/x/crypto/acme"

	"github.com/mica-pki/mica/acme"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// caaEnv serves profile "caa" that checks CAA for the identity mica.test.
func caaEnv(t *testing.T) *testEnv {
	return newEnv(t, inventorytest.SQLite(t), func(o *acme.Options) {
		o.Profiles = map[string]acme.Profile{
			"default": {CAProfiles: []string{"server"}},
			"caa":     {CAProfiles: []string{"server"}, CAAIdentities: []string{"mica.test"}},
		}
	})
}

// attempt runs an order for name with challenge typ and returns the type
// of the problem it ended with (validation or finalize), "" on issuance.
// between runs after validation, before finalize.
func (e *testEnv) attempt(ctx context.Context, c *xacme.Client, name, typ string, between func()) string {
	e.t.Helper()
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: name}})
	if err != nil {
		e.t.Fatalf("AuthorizeOrder(%s): %v", name, err)
	}
	z, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ch := range z.Challenges {
		if ch.Type != typ {
			continue
		}
		switch typ {
		case "http-01":
			v, _ := c.HTTP01ChallengeResponse(ch.Token)
			e.tokens.Store(ch.Token, v)
		case "dns-01":
			v, _ := c.DNS01ChallengeRecord(ch.Token)
			e.dns.SetTXT("_acme-challenge."+z.Identifier.Value, v)
		}
		if _, err := c.Accept(ctx, ch); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := c.WaitAuthorization(ctx, o.AuthzURLs[0]); err != nil {
		var ae *xacme.AuthorizationError
		var pe *xacme.Error
		if !errors.As(err, &ae) || len(ae.Errors) == 0 || !errors.As(ae.Errors[0], &pe) {
			e.t.Fatalf("WaitAuthorization(%s) = %v, want a problem", name, err)
		}
		return shortType(pe.ProblemType)
	}
	if between != nil {
		between()
	}
	if _, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(e.t, newKey(e.t), name), false); err != nil {
		var pe *xacme.Error
		if !errors.As(err, &pe) {
			e.t.Fatalf("CreateOrderCert(%s) = %v, want a problem", name, err)
		}
		return shortType(pe.ProblemType)
	}
	return ""
}

func shortType(t string) string { return strings.TrimPrefix(t, "urn:ietf:params:acme:error:") }

// TestCAA drives orders through a directory with CAA checking against
// record sets covering RFC 8659 and RFC 8657.
func TestCAA(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	e := caaEnv(t)
	c := e.newClient(newKey(t), "caa")
	if _, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	acct := accountURL(ctx, t, c)
	type rec struct {
		at         string // relative to the case's domain: "" is the domain itself
		flag       uint8
		tag, value string
	}
	for i, tc := range []struct {
		name     string
		recs     []rec
		label    string // prefix of the ordered name ("*." for a wildcard)
		typ      string
		servfail bool
		want     string
	}{
		{name: "no records", typ: "http-01"},
		{name: "issue names us", recs: []rec{{tag: "issue", value: "mica.test"}}, typ: "http-01"},
		{name: "issue names us, any case", recs: []rec{{tag: "ISSUE", value: "MICA.Test."}}, typ: "http-01"},
		{name: "issue names another CA", recs: []rec{{tag: "issue", value: "other.example"}}, typ: "http-01", want: "caa"},
		{name: "one of several", recs: []rec{{tag: "issue", value: "other.example"}, {tag: "issue", value: "mica.test"}}, typ: "http-01"},
		{name: "issue ; forbids everyone", recs: []rec{{tag: "issue", value: ";"}}, typ: "http-01", want: "caa"},
		{name: "climbs to the parent", recs: []rec{{tag: "issue", value: "other.example"}}, label: "www.", typ: "http-01", want: "caa"},
		{name: "closest set wins", recs: []rec{{tag: "issue", value: "other.example"}, {at: "www.", tag: "issue", value: "mica.test"}}, label: "www.", typ: "http-01"},
		{name: "only iodef", recs: []rec{{tag: "iodef", value: "mailto:sec@example.com"}}, typ: "http-01"},
		{name: "issuewild only restricts wildcards", recs: []rec{{tag: "issuewild", value: "other.example"}}, typ: "http-01"},
		{name: "issuewild forbids the wildcard", recs: []rec{{tag: "issue", value: "mica.test"}, {tag: "issuewild", value: "other.example"}}, label: "*.", typ: "dns-01", want: "caa"},
		{name: "issuewild allows the wildcard", recs: []rec{{tag: "issue", value: "other.example"}, {tag: "issuewild", value: "mica.test"}}, label: "*.", typ: "dns-01"},
		{name: "wildcard falls back to issue", recs: []rec{{tag: "issue", value: "mica.test"}}, label: "*.", typ: "dns-01"},
		{name: "wildcard refused by issue", recs: []rec{{tag: "issue", value: "other.example"}}, label: "*.", typ: "dns-01", want: "caa"},
		{name: "critical unknown tag", recs: []rec{{flag: 128, tag: "tbs", value: "x"}, {tag: "issue", value: "mica.test"}}, typ: "http-01", want: "caa"},
		{name: "non-critical unknown tag", recs: []rec{{tag: "tbs", value: "x"}, {tag: "issue", value: "mica.test"}}, typ: "http-01"},
		{name: "accounturi is ours", recs: []rec{{tag: "issue", value: "mica.test; accounturi=" + acct}}, typ: "http-01"},
		{name: "accounturi of another account", recs: []rec{{tag: "issue", value: "mica.test; accounturi=" + acct + "x"}}, typ: "http-01", want: "caa"},
		{name: "validationmethods excludes http-01", recs: []rec{{tag: "issue", value: "mica.test; validationmethods=dns-01"}}, typ: "http-01", want: "caa"},
		{name: "validationmethods includes it", recs: []rec{{tag: "issue", value: "mica.test; validationmethods=dns-01,http-01"}}, typ: "http-01"},
		{name: "both parameters", recs: []rec{{tag: "issue", value: "mica.test;validationmethods=dns-01; accounturi=" + acct}}, typ: "dns-01"},
		{name: "unparsable value", recs: []rec{{tag: "issue", value: "mica.test; junk"}}, typ: "http-01", want: "caa"},
		{name: "lookup fails", typ: "http-01", servfail: true, want: "dns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Its own deadline: parallel subtests start only when the
			// package's other parallel tests leave room, so the parent's
			// would run out while they wait under -race.
			ctx := ctxT(t)
			domain := fmt.Sprintf("caa%d.test", i)
			for _, r := range tc.recs {
				e.dns.SetCAA(r.at+domain, r.flag, r.tag, r.value)
			}
			if tc.servfail {
				e.dns.FailCAA(domain, true)
			}
			if got := e.attempt(ctx, c, tc.label+domain, tc.typ, nil); got != tc.want {
				t.Fatalf("order for %s%s = %q, want %q", tc.label, domain, got, tc.want)
			}
		})
	}

	caaIdentitiesChecked(t, e)

	// The default directory does not check CAA.
	plain := e.client(ctx)
	e.dns.SetCAA("plain.test", 0, "issue", "other.example")
	if got := e.attempt(ctx, plain, "plain.test", "http-01", nil); got != "" {
		t.Fatalf("order without CAA checking = %q, want issuance", got)
	}
	// Records published after validation are seen at finalize; the order
	// stays ready, so it can be finalized once they are fixed.
	got := e.attempt(ctx, c, "late.test", "http-01", func() { e.dns.SetCAA("late.test", 0, "issue", "other.example") })
	if got != "caa" {
		t.Fatalf("finalize after a CAA change = %q, want caa", got)
	}

	// Two names refused at finalize: one caa problem, a subproblem each
	// naming its identifier; fixing the records lets the same order finish.
	names := []string{"two-a.test", "two-b.test"}
	o, err := c.AuthorizeOrder(ctx, xacme.DomainIDs(names...))
	if err != nil {
		t.Fatal(err)
	}
	o = e.solve(ctx, c, o, "dns-01")
	for _, n := range names {
		e.dns.SetCAA(n, 0, "issue", "mica.test; validationmethods=http-01")
	}
	_, _, err = c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), names...), false)
	var pe *xacme.Error
	if !errors.As(err, &pe) || shortType(pe.ProblemType) != "caa" || len(pe.Subproblems) != 2 {
		t.Fatalf("finalize of two refused names = %v, want caa with 2 subproblems", err)
	}
	seen := map[string]bool{}
	for _, sp := range pe.Subproblems {
		if shortType(sp.Type) != "caa" || sp.Identifier == nil {
			t.Fatalf("subproblem %+v, want caa with an identifier", sp)
		}
		seen[sp.Identifier.Value] = true
	}
	if !seen[names[0]] || !seen[names[1]] {
		t.Fatalf("subproblems name %v, want %v", seen, names)
	}
	for _, n := range names {
		e.dns.ClearCAA(n)
	}
	if _, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), names...), false); err != nil {
		t.Fatalf("finalize after the records were fixed: %v", err)
	}
}

// caaIdentitiesChecked: a profile's CAA identities must be domain names.
func caaIdentitiesChecked(t *testing.T, e *testEnv) {
	for _, tc := range []struct {
		ids  []string
		okay bool
	}{
		{[]string{"ca.example.net"}, true},
		{[]string{"CA.Example.Net."}, true},
		{[]string{"ca.example.net; accounturi=x"}, false},
		{[]string{"*.example.net"}, false},
		{[]string{""}, false},
	} {
		opts := e.opts
		opts.Profiles = map[string]acme.Profile{"p": {CAProfiles: []string{"server"}, CAAIdentities: tc.ids}}
		ctx, cancel := context.WithCancel(context.Background())
		_, err := acme.New(ctx, opts)
		cancel()
		if (err == nil) != tc.okay {
			t.Errorf("New with CAA identities %q = %v, want ok %v", tc.ids, err, tc.okay)
		}
	}
}
