package discover

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// ErrNotAllowed marks a target refused by the allow-list; it was never
// contacted.
var ErrNotAllowed = errors.New("not on the scan allow-list")

// Resolver looks host names up; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Scanner is the TLS source: it handshakes with each target (SNI set to
// the name given) and records the chain presented.
type Scanner struct {
	Targets     []string // "host", "host:port", "IP", "IP:port", "CIDR"
	Ports       []int    // for targets without a port; default 443
	Allow       *AllowList
	Concurrency int           // parallel handshakes; default 16
	Timeout     time.Duration // per connection, dial and handshake; default 5s
	// MaxAddresses caps how many endpoints one run may touch; default 4096.
	MaxAddresses int
	Resolver     Resolver // default net.DefaultResolver
	// Dial connects to an allowed address; default a net.Dialer. Tests
	// replace it to prove a refused target is never dialled.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

var _ Source = (*Scanner)(nil)

// endpoint is one allowed address to handshake with.
type endpoint struct {
	sni  string // host name for SNI, empty for IP targets
	addr netip.AddrPort
	loc  string // location recorded: host:port as the user named it
}

// Run scans every allowed endpoint and reports the rest as failures.
func (s *Scanner) Run(ctx context.Context, sink Sink) error {
	out := &serialSink{sink: sink}
	eps := s.plan(ctx, out)
	conc := s.Concurrency
	if conc <= 0 {
		conc = 16
	}
	work := make(chan endpoint)
	var wg sync.WaitGroup
	for range min(conc, max(len(eps), 1)) {
		wg.Go(func() {
			for ep := range work {
				chain, err := s.handshake(ctx, ep)
				if err != nil {
					out.failed(ctx, ep.loc, err)
					continue
				}
				out.found(ctx, Found{Kind: inventory.KindTLS, Location: ep.loc, Chain: chain})
			}
		})
	}
	for _, ep := range eps {
		select {
		case work <- ep:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}

// plan expands targets into allowed endpoints, checking every address
// against the allow-list before anything is dialled.
func (s *Scanner) plan(ctx context.Context, out *serialSink) []endpoint {
	ports := s.Ports
	if len(ports) == 0 {
		ports = []int{443}
	}
	limit := s.MaxAddresses
	if limit <= 0 {
		limit = 4096
	}
	res := s.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	var eps []endpoint
	add := func(target, sni string, ip netip.Addr, port int) bool {
		if len(eps) >= limit {
			out.failed(ctx, target, fmt.Errorf("scan stopped at %d endpoints (MaxAddresses)", limit))
			return false
		}
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
		loc := ap.String()
		if sni != "" {
			loc = net.JoinHostPort(sni, strconv.Itoa(port))
		}
		eps = append(eps, endpoint{sni: sni, addr: ap, loc: loc})
		return true
	}
	for _, t := range s.Targets {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if p, err := netip.ParsePrefix(t); err == nil {
			p = p.Masked()
			if hostBits := p.Addr().BitLen() - p.Bits(); hostBits > 16 || (1<<hostBits)*len(ports) > limit {
				out.failed(ctx, t, fmt.Errorf("range too large (at most %d endpoints per scan)", limit))
				continue
			}
			if !s.Allow.AllowsPrefix(p) {
				out.failed(ctx, t, ErrNotAllowed)
				continue
			}
			for ip := p.Addr(); p.Contains(ip); ip = ip.Next() {
				for _, port := range ports {
					if !add(t, "", ip, port) {
						return eps
					}
				}
			}
			continue
		}
		host, tports := t, ports
		if h, ps, err := net.SplitHostPort(t); err == nil {
			port, err := strconv.Atoi(ps)
			if err != nil || port < 1 || port > 65535 {
				out.failed(ctx, t, fmt.Errorf("bad port %q", ps))
				continue
			}
			host, tports = h, []int{port}
		}
		var addrs []netip.Addr
		sni := ""
		if ip, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{ip}
		} else {
			sni = host
			lctx, cancel := context.WithTimeout(ctx, s.timeout())
			addrs, err = res.LookupNetIP(lctx, "ip", host)
			cancel()
			if err != nil {
				out.failed(ctx, t, fmt.Errorf("resolve: %v", err))
				continue
			}
		}
		for _, ip := range addrs {
			if !s.Allow.Allows(ip) {
				out.failed(ctx, t, fmt.Errorf("%s: %w", ip, ErrNotAllowed))
				continue
			}
			for _, port := range tports {
				if !add(t, sni, ip, port) {
					return eps
				}
			}
		}
	}
	return eps
}

func (s *Scanner) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 5 * time.Second
}

// handshake connects to the already-checked address and returns the
// presented chain. Verification is off on purpose: discovery records
// what is served, expired and self-signed certificates included.
func (s *Scanner) handshake(ctx context.Context, ep endpoint) ([][]byte, error) {
	if !s.Allow.Allows(ep.addr.Addr()) { // belt and braces: never dial outside the list
		return nil, ErrNotAllowed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	dial := s.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(ctx, "tcp", ep.addr.String())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{ServerName: ep.sni, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // #nosec G402 -- discovery records, never trusts
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	defer conn.Close()
	var chain [][]byte
	for _, c := range conn.ConnectionState().PeerCertificates {
		chain = append(chain, c.Raw)
	}
	if len(chain) == 0 {
		return nil, errors.New("server presented no certificate")
	}
	return chain, nil
}
