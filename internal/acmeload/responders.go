package acmeload

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DNS is a loopback DNS server on UDP and TCP that answers A 127.0.0.1
// for every name and nothing else (no AAAA, no CAA, no TXT), so a CA's
// validator reaches the http-01 responder on 127.0.0.1.
type DNS struct {
	Addr string // HOST:PORT, UDP and TCP
	udp  *dns.Server
	tcp  *dns.Server
}

// StartDNS listens on addr ("127.0.0.1:0" picks a port free on both UDP
// and TCP). Close stops it.
func StartDNS(addr string) (*DNS, error) {
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
		if !strings.HasSuffix(addr, ":0") {
			break // a fixed port: no point in retrying
		}
	}
	if pc == nil {
		return nil, errors.Join(errors.New("acmeload: no UDP+TCP port pair for DNS"), err)
	}
	d := &DNS{Addr: pc.LocalAddr().String()}
	h := dns.HandlerFunc(serveDNS)
	d.udp = &dns.Server{PacketConn: pc, Handler: h}
	d.tcp = &dns.Server{Listener: ln, Handler: h}
	go func() { _ = d.udp.ActivateAndServe() }()
	go func() { _ = d.tcp.ActivateAndServe() }()
	return d, nil
}

// Close stops both listeners.
func (d *DNS) Close() error {
	return errors.Join(d.udp.Shutdown(), d.tcp.Shutdown())
}

func serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
				A:   net.IPv4(127, 0, 0, 1),
			})
		}
	}
	_ = w.WriteMsg(m)
}

// HTTP01 answers /.well-known/acme-challenge/TOKEN with the key
// authorization a client registered for TOKEN. Safe for concurrent use.
type HTTP01 struct {
	Addr   string // HOST:PORT it listens on
	srv    *http.Server
	tokens sync.Map // token → key authorization
}

// StartHTTP01 listens on addr ("127.0.0.1:0" picks a port).
func StartHTTP01(addr string) (*HTTP01, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	h := &HTTP01{Addr: ln.Addr().String()}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	return h, nil
}

// Set publishes the key authorization for token until Delete.
func (h *HTTP01) Set(token, keyAuth string) { h.tokens.Store(token, keyAuth) }

// Delete withdraws token.
func (h *HTTP01) Delete(token string) { h.tokens.Delete(token) }

// Port is the TCP port a CA's validator has to connect to.
func (h *HTTP01) Port() int {
	_, p, _ := net.SplitHostPort(h.Addr)
	n := 0
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}

func (h *HTTP01) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	if ok {
		if v, found := h.tokens.Load(tok); found {
			_, _ = w.Write([]byte(v.(string)))
			return
		}
	}
	http.NotFound(w, r)
}

// Close stops the responder.
func (h *HTTP01) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return h.srv.Shutdown(ctx)
}
