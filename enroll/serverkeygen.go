package enroll

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/mica-pki/mica/ca"
)

// serverkeygen answers POST /serverkeygen (RFC 7030 section 4.4): the
// device sends a CSR for the names it wants, the server supplies the key
// (from the label's pool of pre-generated keys), has the CA certify it and
// answers multipart/mixed: the PKCS#8 private key, then the certificate as
// certs-only PKCS#7. The key travels only inside the TLS session.
func (s *Server) serverkeygen(w http.ResponseWriter, r *http.Request, l *label) {
	const op = "serverkeygen"
	if l.pool == nil {
		s.fail(w, r, op, "", ca.Errorf(ca.ErrNotFound, "serverkeygen is not enabled for EST label %s", l.name))
		return
	}
	if !s.allow(w, r, op) {
		return
	}
	der, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, op, "", badBody(err))
		return
	}
	asked, err := x509.ParseCertificateRequest(der)
	if err != nil {
		s.fail(w, r, op, "", ca.Wrap(ca.ErrBadCSR, err, "malformed CSR"))
		return
	}
	p, err := s.authenticate(r, l)
	if err != nil {
		s.fail(w, r, op, "", err)
		return
	}
	key, _, err := l.pool.take(r.Context())
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
	issued, err := s.issue(r, l, p, csr, "")
	if err != nil {
		s.release(r, p)
		s.fail(w, r, op, p.requester, err)
		return
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		s.fail(w, r, op, p.requester, ca.Wrap(ca.ErrInternal, err, "encoding key"))
		return
	}
	p7, err := certsOnly([]*x509.Certificate{issued.Certificate})
	if err != nil {
		s.fail(w, r, op, p.requester, err)
		return
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct {
		ct  string
		der []byte
	}{{mediaPKCS8, pkcs8}, {mediaPKCS7, p7}} {
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
