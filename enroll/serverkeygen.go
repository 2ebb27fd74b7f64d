package enroll

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// serverkeygen answers POST /serverkeygen (RFC 7030 section 4.4): the
// device sends a CSR for the names it wants, the server supplies the key
// (from the label's pool of pre-generated keys), has the CA certify it and
// answers multipart/mixed: the PKCS#8 private key, then the certificate as
// certs-only PKCS#7. The key travels inside the TLS session, and, when the
// CSR names one of the client's keys with id-aa-asymmDecryptKeyID, also
// inside CMS EnvelopedData for that key (envelope.go).
func (s *Server) serverkeygen(w http.ResponseWriter, r *http.Request, l *label) {
	const op = "serverkeygen"
	a := s.admit(w, r, l, op)
	if a == nil {
		return
	}
	p, asked := a.p, a.csr
	recip, err := s.keyRecipient(r, p, asked)
	if err != nil {
		s.release(r, p)
		s.fail(w, r, op, p.requester, err)
		return
	}
	key, warm, err := l.pool.take(r.Context())
	if err != nil {
		s.release(r, p)
		s.fail(w, r, op, p.requester, err)
		return
	}
	// The CA certifies a CSR signed by the subject key, so the request is
	// re-made with the pooled key, keeping exactly the subject and names
	// the device asked for; policy checks them as for any enrollment.
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		RawSubject: asked.RawSubject, DNSNames: asked.DNSNames, IPAddresses: asked.IPAddresses,
		URIs: asked.URIs, EmailAddresses: asked.EmailAddresses,
	}, key)
	if err != nil {
		s.release(r, p)
		s.fail(w, r, op, p.requester, ca.Wrap(ca.ErrInternal, err, "building CSR"))
		return
	}
	// The key part is ready before the CA is asked, so nothing is issued
	// that could not be delivered.
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		s.release(r, p)
		s.fail(w, r, op, p.requester, ca.Wrap(ca.ErrInternal, err, "encoding key"))
		return
	}
	keyType, keyDER := mediaPKCS8, pkcs8
	if recip != nil {
		if keyDER, err = envelope(pkcs8, recip); err != nil {
			s.release(r, p)
			s.fail(w, r, op, p.requester, ca.Wrap(ca.ErrInternal, err, "encrypting key"))
			return
		}
		keyType = mediaServerKey
	}
	issued, err := s.issue(r, l, p, csr, "")
	if err != nil {
		s.release(r, p)
		s.fail(w, r, op, p.requester, err)
		return
	}
	p7, err := certsOnly([]*x509.Certificate{issued.Certificate})
	if err != nil {
		s.fail(w, r, op, p.requester, err)
		return
	}
	s.auditKeygen(r, p, issued, warm, recip)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct {
		ct  string
		der []byte
	}{{keyType, keyDER}, {mediaPKCS7, p7}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {part.ct}, "Content-Transfer-Encoding": {"base64"}})
		if err != nil {
			s.fail(w, r, op, p.requester, err)
			return
		}
		_, _ = pw.Write(wrap76(part.der))
	}
	_ = mw.Close()
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body.Bytes())
}

// auditKeygen records that the server made (or handed out) the subject's
// private key: the issuance event says a certificate exists, this one says
// its key passed through MICA.
func (s *Server) auditKeygen(r *http.Request, p *principal, issued *ca.Issued, warm bool, recip *x509.Certificate) {
	details := map[string]any{"label_profile": issued.Record.Profile, "from_pool": warm, "key_type": issued.Record.KeyType}
	if recip != nil {
		details["encrypted_to"] = fmt.Sprintf("%X", keyID(recip))
	}
	d, _ := json.Marshal(details)
	if _, err := s.store.AppendEvent(r.Context(), inventory.Event{Time: s.now(), Actor: p.requester, Action: "est.serverkeygen",
		Protocol: "est", Source: s.sourceAddr(r), Object: "cert:" + issued.Record.IssuerID + "/" + issued.Record.Serial,
		Outcome: "ok", Details: d}); err != nil {
		s.log.Error("auditing serverkeygen", "err", err)
	}
}
