// Package acmetest gives ACME tests a tiny authoritative DNS server on
// loopback: every name has A 127.0.0.1 (so http-01 and tls-alpn-01 reach
// the test's responders), and TXT records are set by the test or by client
// hooks over a small HTTP API shaped like pebble-challtestsrv's. A test
// may point a name elsewhere (SetAddr). CAA
// records (none by default) and lookup failures are set by the test.
//
//	curl -d '{"host":"_acme-challenge.a.test.","value":"V"}' $API/set-txt
//	curl -d '{"host":"_acme-challenge.a.test."}' $API/clear-txt
package acmetest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is a running test DNS server.
type DNS struct {
	Addr string // HOST:PORT, UDP and TCP
	API  string // base URL of the HTTP API
	mu   sync.Mutex
	txt  map[string][]string
	caa  map[string][]*dns.CAA
	fail map[string]bool         // names answered SERVFAIL for CAA
	addr map[string][]netip.Addr // A/AAAA instead of A 127.0.0.1
}

// NewDNS starts a server stopped by t.Cleanup.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{txt: map[string][]string{}, caa: map[string][]*dns.CAA{}, fail: map[string]bool{}, addr: map[string][]netip.Addr{}}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("acmetest: no free UDP+TCP port pair")
	}
	d.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(d.serveDNS)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	api := httptest.NewServer(http.HandlerFunc(d.serveAPI))
	d.API = api.URL
	t.Cleanup(func() {
		api.Close()
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	})
	return d
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// SetTXT adds a TXT value at name.
func (d *DNS) SetTXT(name, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[fqdn(name)] = append(d.txt[fqdn(name)], value)
}

// SetAddr makes name resolve to addrs (A records for the IPv4 ones, AAAA
// for the IPv6 ones) instead of A 127.0.0.1.
func (d *DNS) SetAddr(name string, addrs ...netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addr[fqdn(name)] = addrs
}

// ClearTXT removes every TXT value at name.
func (d *DNS) ClearTXT(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.txt, fqdn(name))
}

// SetCAA adds a CAA record at name: flag 128 marks it critical, tag is
// issue, issuewild, iodef or anything else, value as in RFC 8659.
func (d *DNS) SetCAA(name string, flag uint8, tag, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.caa[fqdn(name)] = append(d.caa[fqdn(name)], &dns.CAA{Flag: flag, Tag: tag, Value: value})
}

// ClearCAA removes every CAA record at name.
func (d *DNS) ClearCAA(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.caa, fqdn(name))
}

// FailCAA makes CAA queries for name answer SERVFAIL (on) or normally.
func (d *DNS) FailCAA(name string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail[fqdn(name)] = on
}

func (d *DNS) serveAPI(w http.ResponseWriter, r *http.Request) {
	var in struct{ Host, Value string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Host == "" {
		http.Error(w, "want {host, value}", http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/set-txt":
		d.SetTXT(in.Host, in.Value)
	case "/clear-txt":
		d.ClearTXT(in.Host)
	default:
		http.NotFound(w, r)
	}
}

func (d *DNS) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
		switch q.Qtype {
		case dns.TypeA, dns.TypeAAAA:
			d.mu.Lock()
			addrs, set := d.addr[fqdn(q.Name)]
			d.mu.Unlock()
			if !set {
				addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}
			}
			for _, a := range addrs {
				switch {
				case q.Qtype == dns.TypeA && a.Is4():
					hdr.Rrtype = dns.TypeA
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IP(a.AsSlice())})
				case q.Qtype == dns.TypeAAAA && !a.Is4():
					hdr.Rrtype = dns.TypeAAAA
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())})
				}
			}
		case dns.TypeSOA:
			// Every name is its own zone, so clients that look for the
			// zone apex (lego) find one.
			hdr.Rrtype = dns.TypeSOA
			m.Answer = append(m.Answer, &dns.SOA{Hdr: hdr, Ns: "ns." + q.Name, Mbox: "hostmaster." + q.Name, Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 0})
		case dns.TypeNS:
			hdr.Rrtype = dns.TypeNS
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr, Ns: "ns." + q.Name})
		case dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			d.mu.Lock()
			for _, v := range d.txt[fqdn(q.Name)] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
			}
			d.mu.Unlock()
		case dns.TypeCAA:
			d.mu.Lock()
			if d.fail[fqdn(q.Name)] {
				m.Rcode = dns.RcodeServerFailure
			}
			for _, rr := range d.caa[fqdn(q.Name)] {
				c := *rr
				c.Hdr = dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCAA, Class: dns.ClassINET}
				m.Answer = append(m.Answer, &c)
			}
			d.mu.Unlock()
		}
	}
	_ = w.WriteMsg(m)
}
