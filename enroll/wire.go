package enroll

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Media types of RFC 7030 section 3.2.4 and RFC 8951.
const (
	mediaPKCS7    = "application/pkcs7-mime; smime-type=certs-only"
	mediaPKCS10   = "application/pkcs10"
	mediaCSRAttrs = "application/csrattrs"
	mediaPKCS8    = "application/pkcs8"
)

// maxBody caps what a request body may hold: a CSR with a 4096-bit RSA key
// and a few hundred names fits in a tenth of it.
const maxBody = 64 << 10

// readBody returns the DER a client posted. RFC 8951 says the body is
// base64 whatever the Content-Transfer-Encoding header says; clients in the
// field send base64 at any width or on one line, with CRLF or LF, sometimes
// PEM-armoured, and a few send raw DER. All of these are accepted.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, fmt.Errorf("reading body: %w", err)
	}
	return decodeBody(body)
}

var errTooLarge = errors.New("request body too large")

func decodeBody(body []byte) ([]byte, error) {
	der, err := decodeLenient(body)
	if err == nil && len(der) == 0 {
		// An empty PEM block: nothing to parse, and not a CSR.
		return nil, errors.New("body decodes to nothing")
	}
	return der, err
}

func decodeLenient(body []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errors.New("empty body")
	}
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		b, _ := pem.Decode(trimmed)
		if b == nil {
			return nil, errors.New("malformed PEM")
		}
		return b.Bytes, nil
	}
	// Raw DER starts with a SEQUENCE tag; base64 never does (0x30 is '0',
	// which base64 of a SEQUENCE never starts with: that is 'M').
	if trimmed[0] == 0x30 && len(trimmed) > 1 && trimmed[1] >= 0x80 {
		return body, nil
	}
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, string(trimmed))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(clean); err == nil {
			return der, nil
		}
	}
	return nil, errors.New("body is neither base64, PEM nor DER")
}

// wrap76 base64-encodes der in lines of 76 characters, each ending in LF.
func wrap76(der []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(der)
	var b bytes.Buffer
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteByte('\n')
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	return b.Bytes()
}

// writeBase64 sends der as base64 with the Content-Transfer-Encoding
// header, which RFC 8951 made optional for clients but which deployed
// clients still insist on.
func writeBase64(w http.ResponseWriter, status int, contentType string, der []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Transfer-Encoding", "base64")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(wrap76(der))
}
