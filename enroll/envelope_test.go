package enroll_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
)

var (
	oidAsymmDecryptKeyID = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 54}
	oidDecryptKeyID      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 37}
)

// selfSigned is a client certificate the device holds for its own key,
// presented in the TLS handshake beside a token.
func selfSigned(t *testing.T, key crypto.Signer, ski []byte) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "device key"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), SubjectKeyId: ski,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
	}, &x509.Certificate{Subject: pkix.Name{CommonName: "device key"}}, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}
}

// csrWithAttr makes a CSR for cn whose CertificationRequestInfo carries
// the attribute oid with one OCTET STRING value, which the standard
// library cannot add.
func csrWithAttr(t *testing.T, cn string, oid asn1.ObjectIdentifier, value []byte) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	plain, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificateRequest(plain)
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddBytes(parsed.RawSubject)
		b.AddBytes(parsed.RawSubjectPublicKeyInfo)
		b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oid)
				b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) { b.AddASN1OctetString(value) })
			})
		})
	})
	tbs := b.BytesOrPanic()
	sig, err := k.Sign(rand.Reader, sha256Sum(tbs), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	out := cryptobyte.NewBuilder(nil)
	out.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
		})
		b.AddASN1BitString(sig)
	})
	der := out.BytesOrPanic()
	if _, err := x509.ParseCertificateRequest(der); err != nil {
		t.Fatal(err)
	}
	return der
}

func sha256Sum(b []byte) []byte {
	h := crypto.SHA256.New()
	h.Write(b)
	return h.Sum(nil)
}

// spkiSHA1 is the RFC 5280 method-1 key identifier of c.
func spkiSHA1(t *testing.T, c *x509.Certificate) []byte {
	var spki struct {
		Alg asn1.RawValue
		Key asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		t.Fatal(err)
	}
	s := sha1.Sum(spki.Key.Bytes)
	return s[:]
}

// postKeygen posts csr to serverkeygen with a token and the TLS client
// certificate tc, returning the status, the part types and bodies (or the
// refusal text).
func postKeygen(t *testing.T, e *testEnv, tc *tls.Certificate, user, pass string, csr []byte) (int, []string, [][]byte, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url("/serverkeygen"), strings.NewReader(base64.StdEncoding.EncodeToString(csr)))
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/pkcs10")
	resp, err := e.client(tc).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, nil, nil, string(b)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var types []string
	var bodies [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(p)
		der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(raw), "\n", ""))
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, p.Header.Get("Content-Type"))
		bodies = append(bodies, der)
	}
	return resp.StatusCode, types, bodies, ""
}

// testServerKeygenEncrypted asks for server-generated keys encrypted to the
// device's RSA, P-256 and P-384 keys and opens each EnvelopedData with
// `openssl cms -decrypt`; then checks the refusals.
func testServerKeygenEncrypted(t *testing.T, b *base) {
	needTools(t, "openssl")
	e := newEnv(t, b, nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		ski  []byte // nil: the certificate has none, the client uses SHA-1 of its key
	}{
		{"rsa", rsaKey, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"p256", p256, nil},
		{"p384", p384, []byte("p384-key-id")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, tlsCert := selfSigned(t, tc.key, tc.ski)
			id := tc.ski
			if id == nil {
				id = spkiSHA1(t, cert)
			}
			user, pass := e.token("default")
			// A key identifier the server cannot resolve is refused and
			// neither spends the token nor takes a key from the pool.
			code, _, _, msg := postKeygen(t, e, &tlsCert, user, pass, csrWithAttr(t, "enc"+tc.name, oidAsymmDecryptKeyID, []byte("unknown")))
			if code != http.StatusBadRequest || !strings.Contains(msg, "names no certificate") {
				t.Fatalf("unknown key id: %d %q", code, msg)
			}
			code, types, bodies, msg := postKeygen(t, e, &tlsCert, user, pass, csrWithAttr(t, "enc"+tc.name, oidAsymmDecryptKeyID, id))
			if code != http.StatusOK {
				t.Fatalf("serverkeygen: %d %s", code, msg)
			}
			if len(types) != 2 || types[0] != "application/pkcs7-mime; smime-type=server-generated-key" {
				t.Fatalf("part types %q", types)
			}
			certs, err := enroll.ParseCertsOnly(bodies[1])
			if err != nil {
				t.Fatal(err)
			}
			pkcs8Key, _ := x509.MarshalPKCS8PrivateKey(tc.key)
			e.write(tc.name+".env", bodies[0])
			e.write(tc.name+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
			e.write(tc.name+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8Key}))
			sh(t, e.dir, `openssl cms -decrypt -inform DER -in `+tc.name+`.env -recip `+tc.name+`.crt -inkey `+tc.name+`.key -binary -out `+tc.name+`.p8`)
			got, err := x509.ParsePKCS8PrivateKey([]byte(sh(t, e.dir, `cat `+tc.name+`.p8`)))
			if err != nil {
				t.Fatalf("decrypted content is not PKCS#8: %v", err)
			}
			pub := got.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool })
			if !pub.Equal(certs[0].PublicKey) || certs[0].Subject.CommonName != "enc"+tc.name {
				t.Fatal("decrypted key does not match the issued certificate")
			}
			evs, err := e.store.Events(context.Background(), inventory.EventFilter{Action: "est.serverkeygen", Actor: "est-token:" + user})
			var ok []inventory.Event
			for _, ev := range evs {
				if ev.Outcome == "ok" {
					ok = append(ok, ev)
				}
			}
			// The refusal above is audited too, as denied.
			if err != nil || len(evs) != 2 || len(ok) != 1 || !strings.Contains(string(ok[0].Details), fmt.Sprintf(`"encrypted_to":"%X"`, id)) {
				t.Fatalf("serverkeygen audit events %v (%v), want a denied one and an ok one with encrypted_to %X", evs, err, id)
			}
		})
	}
	// The usual device: it holds a MICA certificate, authenticates with it
	// and names its key; the new key comes back encrypted to the old one.
	t.Run("mica-certificate", func(t *testing.T) {
		tlsCert, cert := e.enrollDevice(t, "encmica")
		id := cert.SubjectKeyId
		if id == nil {
			id = spkiSHA1(t, cert)
		}
		code, types, bodies, msg := postKeygen(t, e, tlsCert, "", "", csrWithAttr(t, "encmica", oidAsymmDecryptKeyID, id))
		if code != http.StatusOK {
			t.Fatalf("serverkeygen with MICA certificate: %d %s", code, msg)
		}
		if types[0] != "application/pkcs7-mime; smime-type=server-generated-key" {
			t.Fatalf("part types %q", types)
		}
		pkcs8Key, _ := x509.MarshalPKCS8PrivateKey(tlsCert.PrivateKey)
		e.write("mica.env", bodies[0])
		e.write("mica.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
		e.write("mica.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8Key}))
		out := sh(t, e.dir, `openssl cms -decrypt -inform DER -in mica.env -recip mica.crt -inkey mica.key -binary | openssl pkey -inform DER -pubout`)
		certs, _ := enroll.ParseCertsOnly(bodies[1])
		spki, _ := x509.MarshalPKIXPublicKey(certs[0].PublicKey)
		if out != string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})) {
			t.Fatalf("decrypted key does not match the issued certificate:\n%s", out)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		edKey := ed25519.PrivateKey(make([]byte, ed25519.PrivateKeySize))
		copy(edKey, ed25519.NewKeyFromSeed(make([]byte, 32)))
		edCert, edTLS := selfSigned(t, edKey, []byte("ed-key"))
		_, rsaTLS := selfSigned(t, rsaKey, []byte("rsa-key"))
		smallKey, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		_, smallTLS := selfSigned(t, smallKey, []byte("small-key"))
		for _, c := range []struct {
			name string
			tc   *tls.Certificate
			oid  asn1.ObjectIdentifier
			id   []byte
			want string
		}{
			{"no client certificate", nil, oidAsymmDecryptKeyID, []byte("rsa-key"), "names no certificate"},
			{"symmetric key", &rsaTLS, oidDecryptKeyID, []byte("rsa-key"), "symmetric key"},
			{"ed25519 recipient", &edTLS, oidAsymmDecryptKeyID, edCert.SubjectKeyId, "Ed25519 key"},
			{"weak rsa recipient", &smallTLS, oidAsymmDecryptKeyID, []byte("small-key"), "1024-bit RSA key"},
		} {
			user, pass := e.token("default")
			code, _, _, msg := postKeygen(t, e, c.tc, user, pass, csrWithAttr(t, "encrefused", c.oid, c.id))
			if code != http.StatusBadRequest || !strings.Contains(msg, c.want) {
				t.Errorf("%s: %d %q, want 400 with %q", c.name, code, msg, c.want)
			}
		}
	})
}
