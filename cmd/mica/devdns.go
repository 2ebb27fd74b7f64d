package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// devNames are the names `mica dev`'s ACME validation resolves to
// loopback: localhost, everything under .test and .localhost (RFC 6761
// reserves both for exactly this), and what --dev-name adds ("app.example"
// or "*.example" for a whole subtree).
type devNames struct {
	exact    map[string]bool
	suffixes []string // with the leading dot
}

func newDevNames(extra []string) devNames {
	n := devNames{exact: map[string]bool{"localhost": true}, suffixes: []string{".test", ".localhost"}}
	for _, e := range extra {
		e = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(e), "."))
		if rest, ok := strings.CutPrefix(e, "*."); ok {
			n.suffixes = append(n.suffixes, "."+rest)
		} else if e != "" {
			n.exact[e] = true
		}
	}
	return n
}

// match reports whether a DNS question name (with or without its trailing
// dot) is a development name.
func (n devNames) match(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if n.exact[name] {
		return true
	}
	for _, s := range n.suffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// loopbackResolver is the resolver `mica dev` gives ACME validation when
// no --dns-resolver is set. It runs in-process: Go's resolver "dials" a
// pipe whose other end is answered here, so there is no DNS port to
// bind. Development names get 127.0.0.1 and ::1 (and no TXT: dns-01 needs
// a real DNS server, given with --dns-resolver); every other question is
// forwarded unchanged to the server the system resolver would have asked.
func loopbackResolver(names devNames) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		client, server := net.Pipe()
		go serveDevDNS(server, names, address)
		return client, nil
	}}
}

// serveDevDNS answers the queries on one pipe. A net.Pipe is not a
// PacketConn, so Go's resolver frames messages as over TCP: a two-byte
// length, then the message.
func serveDevDNS(c net.Conn, names devNames, upstream string) {
	defer c.Close()
	for {
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		buf := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		q := new(dns.Msg)
		if err := q.Unpack(buf); err != nil || len(q.Question) != 1 {
			return
		}
		resp := answerDevDNS(q, names, upstream)
		out, err := resp.Pack()
		if err != nil {
			return
		}
		binary.BigEndian.PutUint16(l[:], uint16(len(out)))
		if _, err := c.Write(append(l[:], out...)); err != nil {
			return
		}
	}
}

// answerDevDNS answers one question: loopback for development names, the
// upstream server's answer otherwise (SERVFAIL when it cannot be asked).
func answerDevDNS(q *dns.Msg, names devNames, upstream string) *dns.Msg {
	qs := q.Question[0]
	if !names.match(qs.Name) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in, _, err := (&dns.Client{Net: "udp"}).ExchangeContext(ctx, q, upstream)
		if err == nil && in.Truncated {
			in, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, q, upstream)
		}
		if err != nil {
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeServerFailure)
			return m
		}
		in.Id = q.Id
		return in
	}
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	hdr := dns.RR_Header{Name: qs.Name, Class: dns.ClassINET, Ttl: 60}
	switch qs.Qtype {
	case dns.TypeA:
		hdr.Rrtype = dns.TypeA
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
	case dns.TypeAAAA:
		hdr.Rrtype = dns.TypeAAAA
		m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IPv6loopback})
	}
	return m
}
