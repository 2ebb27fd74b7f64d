package revocation

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

func TestCreateResponseXCrypto(t *testing.T) {
	// Not ed25519: x/crypto/ocsp cannot verify it ("algorithm unimplemented");
	// TestOCSPOpenSSL covers Ed25519 with the openssl client instead.
	for _, kind := range []string{"p256", "p384", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			ca := newTestCA(t, kind)
			leaf := ca.leaf(t, "leaf", "")
			delegate, delegateKey := ca.delegatedResponder(t)
			now := time.Now().Truncate(time.Second)
			for _, delegated := range []bool{false, true} {
				for _, st := range []Status{Good, Revoked, Unknown} {
					r := Response{CertID: CertID{Serial: leaf.SerialNumber}, Status: st, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour), ProducedAt: now}
					if st == Revoked {
						r.RevokedAt, r.Reason = now.Add(-30*time.Minute), ReasonKeyCompromise
					}
					var cert *x509.Certificate
					var signer crypto.Signer = ca.issuingKey
					if delegated {
						cert, signer = delegate, delegateKey
					}
					der, err := CreateResponse(ca.issuing, cert, signer, r)
					if err != nil {
						t.Fatal(err)
					}
					got, err := ocsp.ParseResponseForCert(der, leaf, ca.issuing)
					if err != nil {
						t.Fatalf("delegated=%v status=%d: x/crypto/ocsp rejects it: %v", delegated, st, err)
					}
					if got.Status != int(st) || got.SerialNumber.Cmp(leaf.SerialNumber) != 0 ||
						!got.ThisUpdate.Equal(r.ThisUpdate) || !got.NextUpdate.Equal(r.NextUpdate) || !got.ProducedAt.Equal(now) {
						t.Fatalf("parsed %+v", got)
					}
					if st == Revoked && (!got.RevokedAt.Equal(r.RevokedAt) || got.RevocationReason != ReasonKeyCompromise) {
						t.Fatalf("revocation info %v %d", got.RevokedAt, got.RevocationReason)
					}
					signing := ca.issuing
					if delegated {
						signing = delegate
						if got.Certificate == nil || !got.Certificate.Equal(delegate) {
							t.Fatal("delegated responder certificate not included")
						}
					}
					bits, _ := publicKeyBits(signing)
					if kh := sha1.Sum(bits); !bytes.Equal(got.ResponderKeyHash, kh[:]) {
						t.Fatal("responderID is not byKey of the signing key")
					}
				}
			}
		})
	}
}

// responseExtensions digs the [1] responseExtensions out of ResponseData
// and, separately, reports whether the SingleResponse had any
// singleExtensions.
func responseExtensions(t *testing.T, der []byte) (nonce []byte, single bool) {
	t.Helper()
	s := cryptobyte.String(der)
	var resp, rb, basicOS, basic, tbs, responses, one cryptobyte.String
	var basicDER []byte
	if !s.ReadASN1(&resp, cbasn1.SEQUENCE) || !resp.SkipASN1(cbasn1.ENUM) ||
		!resp.ReadASN1(&rb, cbasn1.Tag(0).Constructed().ContextSpecific()) || !rb.ReadASN1(&rb, cbasn1.SEQUENCE) ||
		!rb.SkipASN1(cbasn1.OBJECT_IDENTIFIER) || !rb.ReadASN1(&basicOS, cbasn1.OCTET_STRING) {
		t.Fatal("bad OCSPResponse")
	}
	basicDER = basicOS
	basic = cryptobyte.String(basicDER)
	if !basic.ReadASN1(&basic, cbasn1.SEQUENCE) || !basic.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipASN1(cbasn1.Tag(2).Constructed().ContextSpecific()) || !tbs.SkipASN1(cbasn1.GeneralizedTime) ||
		!tbs.ReadASN1(&responses, cbasn1.SEQUENCE) || !responses.ReadASN1(&one, cbasn1.SEQUENCE) {
		t.Fatal("bad ResponseData")
	}
	// SingleResponse: certID, certStatus (whose revoked choice is also
	// [1], so position matters), thisUpdate, [0] nextUpdate, then [1]
	// singleExtensions.
	var skip cryptobyte.String
	if !one.SkipASN1(cbasn1.SEQUENCE) || !one.ReadAnyASN1(&skip, nil) || !one.SkipASN1(cbasn1.GeneralizedTime) ||
		!one.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		t.Fatal("bad SingleResponse")
	}
	single = one.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific())
	var exts cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&exts, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) || !tbs.Empty() {
		t.Fatal("bad responseExtensions")
	}
	if present {
		if err := forEachExtension(exts, "test", func(oid asn1.ObjectIdentifier, _ bool, v []byte) error {
			if oid.Equal(oidNonce) {
				nonce = v
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return nonce, single
}

func TestNonceGoesInResponseExtensions(t *testing.T) {
	ca := newTestCA(t, "p256")
	nonce := append([]byte{0x04, 0x20}, bytes.Repeat([]byte{0xab}, 32)...)
	now := time.Now()
	der, err := CreateResponse(ca.issuing, nil, ca.issuingKey, Response{CertID: CertID{Serial: big.NewInt(99)}, ThisUpdate: now, NextUpdate: now.Add(time.Hour), Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	got, single := responseExtensions(t, der)
	if !bytes.Equal(got, nonce) || single {
		t.Fatalf("nonce %x (want %x), singleExtensions present: %v", got, nonce, single)
	}
	if r, err := ocsp.ParseResponse(der, ca.issuing); err != nil || len(r.Extensions) != 0 {
		t.Fatalf("x/crypto/ocsp: %v, singleExtensions %v", err, r)
	}
}

func TestCreateResponseRejects(t *testing.T) {
	ca := newTestCA(t, "p256")
	other := newTestCA(t, "p256")
	delegate, delegateKey := ca.delegatedResponder(t)
	now := time.Now()
	good := Response{CertID: CertID{Serial: big.NewInt(1)}, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}
	cases := map[string]func() ([]byte, error){
		"wrong signer":       func() ([]byte, error) { return CreateResponse(ca.issuing, nil, other.issuingKey, good) },
		"foreign delegate":   func() ([]byte, error) { return CreateResponse(other.issuing, delegate, delegateKey, good) },
		"delegate, CA key":   func() ([]byte, error) { return CreateResponse(ca.issuing, delegate, ca.issuingKey, good) },
		"non-responder cert": func() ([]byte, error) { return CreateResponse(ca.issuing, ca.leaf(t, "x", ""), delegateKey, good) },
		"no serial": func() ([]byte, error) {
			r := good
			r.Serial = nil
			return CreateResponse(ca.issuing, nil, ca.issuingKey, r)
		},
		"no nextUpdate": func() ([]byte, error) {
			r := good
			r.NextUpdate = time.Time{}
			return CreateResponse(ca.issuing, nil, ca.issuingKey, r)
		},
		"revoked without time": func() ([]byte, error) {
			r := good
			r.Status = Revoked
			return CreateResponse(ca.issuing, nil, ca.issuingKey, r)
		},
		"reason 7": func() ([]byte, error) {
			r := good
			r.Status, r.RevokedAt, r.Reason = Revoked, now, 7
			return CreateResponse(ca.issuing, nil, ca.issuingKey, r)
		},
		"status 3": func() ([]byte, error) {
			r := good
			r.Status = 3
			return CreateResponse(ca.issuing, nil, ca.issuingKey, r)
		},
		"MD5 certID": func() ([]byte, error) {
			r := good
			r.HashAlgorithm = crypto.MD5
			return CreateResponse(ca.issuing, nil, ca.issuingKey, r)
		},
		"huge nonce": func() ([]byte, error) {
			r := good
			r.Nonce = make([]byte, 200)
			return CreateResponse(ca.issuing, nil, ca.issuingKey, r)
		},
	}
	for name, f := range cases {
		if _, err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestErrorResponseConstants(t *testing.T) {
	for raw, want := range map[string]ocsp.ResponseStatus{
		MalformedRequestResponse: ocsp.Malformed, InternalErrorResponse: ocsp.InternalError, TryLaterResponse: ocsp.TryLater,
		SigRequiredResponse: ocsp.SignatureRequired, UnauthorizedResponse: ocsp.Unauthorized,
	} {
		_, err := ocsp.ParseResponse([]byte(raw), nil)
		var re ocsp.ResponseError
		if !errors.As(err, &re) || re.Status != want {
			t.Errorf("%x: %v, want status %v", raw, err, want)
		}
	}
}

func TestDelegatedResponderTemplate(t *testing.T) {
	ca := newTestCA(t, "p256")
	cert, _ := ca.delegatedResponder(t)
	noCheck := false
	for _, e := range cert.Extensions {
		noCheck = noCheck || (e.Id.Equal(oidOCSPNoCheck) && bytes.Equal(e.Value, []byte{5, 0}) && !e.Critical)
	}
	if !noCheck || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning || cert.IsCA ||
		cert.KeyUsage != x509.KeyUsageDigitalSignature || cert.SerialNumber.Sign() <= 0 || len(cert.SerialNumber.Bytes()) != 16 {
		t.Fatalf("responder certificate: EKU %v nocheck %v CA %v KU %v serial %x", cert.ExtKeyUsage, noCheck, cert.IsCA, cert.KeyUsage, cert.SerialNumber)
	}
	if _, err := DelegatedResponderTemplate(cert.Subject, cert.NotAfter, cert.NotBefore); err == nil {
		t.Fatal("inverted validity accepted")
	}
}

func TestDecodeGETRequest(t *testing.T) {
	raw := []byte{0xfb, 0xff, 0xfe, 0x30, 0x03}
	for _, in := range []string{"+//+MAM=", "+//+MAM", "-__-MAM", "%2B%2F%2F%2BMAM%3D", " //+MAM="} {
		got, err := DecodeGETRequest(in)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("%q: %x %v", in, got, err)
		}
	}
	for _, in := range []string{"!!!", "%zz", strings.Repeat("A", 5*MaxRequestSize)} {
		if _, err := DecodeGETRequest(in); !errors.Is(err, ErrMalformedRequest) {
			t.Errorf("%q: %v", in[:min(len(in), 10)], err)
		}
	}
}

func TestParseRequestFromClients(t *testing.T) {
	ca := newTestCA(t, "p256")
	leaf := ca.leaf(t, "leaf", "")
	second := ca.leaf(t, "second", "")
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		der, err := ocsp.CreateRequest(leaf, ca.issuing, &ocsp.RequestOptions{Hash: h})
		if err != nil {
			t.Fatal(err)
		}
		req, err := ParseRequest(der)
		if err != nil || req.HashAlgorithm != h || req.Serial.Cmp(leaf.SerialNumber) != 0 || !req.MatchesIssuer(ca.issuing) || req.Nonce != nil || req.Requests != 1 {
			t.Fatalf("x/crypto %v request: %v %+v", h, err, req)
		}
		if req.MatchesIssuer(newTestCA(t, "p256").issuing) {
			t.Fatal("matches a foreign issuer")
		}
	}
	openSSLReq := func(args ...string) *Request {
		t.Helper()
		path := filepath.Join(ca.dir, "req.der")
		out, err := openssl(t, ca.dir, append(append([]string{"ocsp"}, args...), "-issuer", "issuing.pem", "-cert", "leaf.pem", "-reqout", path)...)
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		der, _ := os.ReadFile(path)
		req, err := ParseRequest(der)
		if err != nil {
			t.Fatalf("openssl %v request: %v", args, err)
		}
		return req
	}
	if r := openSSLReq("-nonce"); len(r.Nonce) != 18 || r.Nonce[0] != 0x04 || r.Nonce[1] != 16 || !r.MatchesIssuer(ca.issuing) {
		t.Fatalf("openssl nonce request: %+v", r)
	}
	if r := openSSLReq("-no_nonce", "-sha256"); r.Nonce != nil || r.HashAlgorithm != crypto.SHA256 {
		t.Fatalf("openssl sha256 request: %+v", r)
	}
	// Two certificates: both counted, the first one (second.pem, given
	// first on the command line) answered.
	if r := openSSLReq("-issuer", "issuing.pem", "-cert", "second.pem"); r.Requests != 2 || r.Serial.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("openssl two-certificate request: %+v", r)
	}
}
