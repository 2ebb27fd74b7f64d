package revocation

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Run with:
//
//	go test -run '^$' -bench . -benchtime 3x ./ca/revocation/
//
// The 1M-entry cases are skipped under -short. Custom metrics:
// peak-heap-MB is the highest live-heap sample above the post-GC baseline
// while the CRL is built; input-MB is what the []x509.RevocationListEntry
// that CreateRevocationList requires occupies before it even starts (not
// counted in its peak); crl-MB is the output size; resp/s is throughput.

// heapSampler polls the live heap through runtime/metrics, which (unlike
// runtime.ReadMemStats) does not stop the world, so sampling every 100 µs
// barely disturbs what it measures.
type heapSampler struct {
	stop, done chan struct{}
	peak       atomic.Uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			if v := heapNow(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) finish() uint64 {
	if v := heapNow(); v > h.peak.Load() {
		h.peak.Store(v)
	}
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

// measurePeak runs f and returns the peak live heap above the baseline
// taken after a full GC. The GC runs with the benchmark timer stopped, so
// ns/op is f alone (for x509 with a 1M-entry input that GC is not free).
func measurePeak(b *testing.B, f func()) uint64 {
	b.StopTimer()
	runtime.GC()
	base := heapNow()
	s := startHeapSampler()
	b.StartTimer()
	f()
	b.StopTimer()
	peak := s.finish()
	b.StartTimer()
	if peak < base {
		return 0
	}
	return peak - base
}

const mb = 1 << 20

func BenchmarkCRL(b *testing.B) {
	ca := newTestCA(b, "p256")
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		if n > 100_000 && testing.Short() {
			continue
		}
		tmpl := testTemplate(1)
		tmpl.SpoolDir = b.TempDir()
		b.Run(fmt.Sprintf("entries=%d/stream", n), func(b *testing.B) {
			b.ReportAllocs()
			var peak uint64
			var st Stats
			for range b.N {
				p := measurePeak(b, func() {
					var err error
					if st, err = WriteCRL(io.Discard, tmpl, ca.issuing, ca.issuingKey, genSource(n)); err != nil {
						b.Fatal(err)
					}
				})
				peak = max(peak, p)
			}
			b.ReportMetric(float64(peak)/mb, "peak-heap-MB")
			b.ReportMetric(float64(st.Size)/mb, "crl-MB")
		})
		b.Run(fmt.Sprintf("entries=%d/x509", n), func(b *testing.B) {
			runtime.GC()
			before := heapNow()
			entries := genX509Entries(n)
			runtime.GC()
			input := max(heapNow(), before) - before
			tpl := &x509.RevocationList{Number: tmpl.Number, ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate, RevokedCertificateEntries: entries}
			b.ReportAllocs()
			var peak uint64
			var size int
			b.ResetTimer()
			for range b.N {
				p := measurePeak(b, func() {
					der, err := x509.CreateRevocationList(rand.Reader, tpl, ca.issuing, ca.issuingKey)
					if err != nil {
						b.Fatal(err)
					}
					size = len(der)
				})
				peak = max(peak, p)
			}
			b.ReportMetric(float64(peak)/mb, "peak-heap-MB")
			b.ReportMetric(float64(input)/mb, "input-MB")
			b.ReportMetric(float64(size)/mb, "crl-MB")
			runtime.KeepAlive(entries)
		})
	}
}

// nonceRequest builds what `openssl ocsp -nonce` sends, for serial.
func nonceRequest(b *testing.B, issuer *x509.Certificate, serial *big.Int, nonce bool) []byte {
	id, err := NewCertID(issuer, 0, serial)
	if err != nil {
		b.Fatal(err)
	}
	bld := cryptobyte.NewBuilder(nil)
	bld.AddASN1(cbasn1.SEQUENCE, func(bb *cryptobyte.Builder) {
		bb.AddASN1(cbasn1.SEQUENCE, func(bb *cryptobyte.Builder) {
			bb.AddASN1(cbasn1.SEQUENCE, func(bb *cryptobyte.Builder) {
				bb.AddASN1(cbasn1.SEQUENCE, func(bb *cryptobyte.Builder) {
					bb.AddASN1(cbasn1.SEQUENCE, func(bb *cryptobyte.Builder) {
						bb.AddASN1(cbasn1.SEQUENCE, func(bb *cryptobyte.Builder) {
							bb.AddASN1ObjectIdentifier(oidSHA1)
							bb.AddASN1NULL()
						})
						bb.AddASN1OctetString(id.IssuerNameHash)
						bb.AddASN1OctetString(id.IssuerKeyHash)
						bb.AddASN1BigInt(serial)
					})
				})
			})
			if nonce {
				bb.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(bb *cryptobyte.Builder) {
					bb.AddASN1(cbasn1.SEQUENCE, func(bb *cryptobyte.Builder) {
						addExtension(bb, oidNonce, false, func(bb *cryptobyte.Builder) { bb.AddASN1OctetString(make([]byte, 32)) })
					})
				})
			}
		})
	})
	return bld.BytesOrPanic()
}

// BenchmarkOCSP compares, through the same http.Handler plumbing:
// constant — write a fixed byte slice, the ceiling for any responder;
// presigned — parse the request, look the serial up, write the response
// signed ahead of time (what RFC 5019 clients without a nonce get);
// live-nonce — parse and sign a fresh response echoing the nonce.
func BenchmarkOCSP(b *testing.B) {
	ca := newTestCA(b, "p256")
	leaf := ca.leaf(b, "leaf", "")
	now := time.Now()
	base := Response{Status: Good, ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour)}
	base.CertID, _ = NewCertID(ca.issuing, 0, leaf.SerialNumber)
	pre, err := CreateResponse(ca.issuing, nil, ca.issuingKey, base)
	if err != nil {
		b.Fatal(err)
	}
	cache := map[string][]byte{string(leaf.SerialNumber.Bytes()): pre}
	plain := nonceRequest(b, ca.issuing, leaf.SerialNumber, false)
	withNonce := nonceRequest(b, ca.issuing, leaf.SerialNumber, true)

	parse := func(w http.ResponseWriter, r *http.Request) *Request {
		w.Header().Set("Content-Type", OCSPResponseContentType)
		der, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestSize+1))
		if err != nil {
			io.WriteString(w, MalformedRequestResponse)
			return nil
		}
		req, err := ParseRequest(der)
		if err != nil {
			io.WriteString(w, MalformedRequestResponse)
			return nil
		}
		return req
	}
	handlers := []struct {
		name string
		body []byte
		h    http.HandlerFunc
	}{
		{"constant", plain, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", OCSPResponseContentType)
			w.Write(pre)
		}},
		{"presigned", plain, func(w http.ResponseWriter, r *http.Request) {
			if req := parse(w, r); req != nil {
				w.Write(cache[string(req.Serial.Bytes())])
			}
		}},
		{"live-nonce", withNonce, func(w http.ResponseWriter, r *http.Request) {
			req := parse(w, r)
			if req == nil {
				return
			}
			resp := base
			resp.CertID, resp.Nonce, resp.ProducedAt = req.CertID, req.Nonce, time.Time{}
			out, err := CreateResponse(ca.issuing, nil, ca.issuingKey, resp)
			if err != nil {
				io.WriteString(w, InternalErrorResponse)
				return
			}
			w.Write(out)
		}},
	}
	// serve uses b.Error, not b.Fatal: it also runs on RunParallel's
	// goroutines, where FailNow is not allowed.
	serve := func(b *testing.B, h http.Handler, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ocsp", bytes.NewReader(body)))
		if rec.Body.Len() < 100 {
			b.Errorf("short response %x", rec.Body.Bytes())
		}
	}
	for _, hc := range handlers {
		b.Run(hc.name, func(b *testing.B) {
			b.ReportAllocs()
			start, n := time.Now(), 0
			for b.Loop() {
				serve(b, hc.h, hc.body)
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "resp/s")
		})
		b.Run(hc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			var n atomic.Int64
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve(b, hc.h, hc.body)
					n.Add(1)
				}
			})
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "resp/s")
		})
	}
}
