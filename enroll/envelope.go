package enroll

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 for the P-384 and P-521 KDFs
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/mica-pki/mica/ca"
)

// Server-generated keys encrypted to a key the client names (RFC 7030
// section 4.4.1.2): the CSR carries id-aa-asymmDecryptKeyID, the key
// identifier of a certificate the client holds, and the private key comes
// back as CMS EnvelopedData (RFC 5652 section 6) for that certificate's
// key, inside the TLS session as before. MICA resolves the identifier
// against the certificates the client authenticated with: the MICA (or
// manufacturer) certificate it enrolled with, or the certificate it
// presented in the TLS handshake (proof of possession of its key is the
// handshake itself). RSA recipients get a KeyTransRecipientInfo with
// RSAES-OAEP (SHA-256, MGF1-SHA-256); EC recipients on P-256, P-384 and
// P-521 get a KeyAgreeRecipientInfo with ephemeral-static ECDH, the
// X9.63 KDF of RFC 5753 and AES-256 key wrap. The content is the PKCS#8
// PrivateKeyInfo under AES-256-CBC, which `openssl cms -decrypt` opens.
//
// RFC 7030 section 4.4.2 also has the server sign the key package; the
// only keys MICA signs with are CA keys, which this package never uses,
// so the EnvelopedData is sent unsigned: the TLS server authentication
// already tells the client who sent it.

var (
	oidDecryptKeyID      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 37}
	oidAsymmDecryptKeyID = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 54}
	oidEnvelopedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidAES256CBC         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidAES256Wrap        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 45}
	oidRSAESOAEP         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMGF1              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidSHA256            = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	// dhSinglePass-stdDH-sha{256,384,512}kdf-scheme (RFC 5753 section 7.1.4).
	oidECDHSHA256KDF = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 1}
	oidECDHSHA384KDF = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 2}
	oidECDHSHA512KDF = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 3}
)

// mediaServerKey is the part type of an encrypted server-generated key.
const mediaServerKey = "application/pkcs7-mime; smime-type=server-generated-key"

// decryptKeyIDs returns the values of the id-aa-asymmDecryptKeyID and
// id-aa-decryptKeyID attributes of a CSR, nil when absent. The standard
// library keeps only extension requests of a CSR's attributes, so the
// CertificationRequestInfo is walked here.
func decryptKeyIDs(tbs []byte) (asymm, symm []byte, err error) {
	in := cryptobyte.String(tbs)
	var info, attrs cryptobyte.String
	var present bool
	if !in.ReadASN1(&info, casn1.SEQUENCE) || !info.SkipASN1(casn1.INTEGER) ||
		!info.SkipASN1(casn1.SEQUENCE) || !info.SkipASN1(casn1.SEQUENCE) ||
		!info.ReadOptionalASN1(&attrs, &present, casn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, nil, errors.New("malformed CertificationRequestInfo")
	}
	for !attrs.Empty() {
		var attr, vals, v cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, casn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) || !attr.ReadASN1(&vals, casn1.SET) {
			return nil, nil, errors.New("malformed CSR attribute")
		}
		var dst *[]byte
		switch {
		case oid.Equal(oidAsymmDecryptKeyID):
			dst = &asymm
		case oid.Equal(oidDecryptKeyID):
			dst = &symm
		default:
			continue
		}
		if !vals.ReadASN1(&v, casn1.OCTET_STRING) || !vals.Empty() || len(v) == 0 {
			return nil, nil, fmt.Errorf("CSR attribute %s must hold one non-empty key identifier", oid)
		}
		*dst = bytes.Clone(v)
	}
	return asymm, symm, nil
}

// keyRecipient resolves the key a serverkeygen request asks its private
// key to be encrypted to: nil when the CSR names none, an ErrBadCSR
// refusal (400 with the reason) when it names one MICA cannot resolve or
// encrypt to.
func (s *Server) keyRecipient(r *http.Request, p *principal, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	asymm, symm, err := decryptKeyIDs(csr.RawTBSCertificateRequest)
	if err != nil {
		return nil, ca.Wrap(ca.ErrBadCSR, err, "malformed CSR attributes")
	}
	if asymm == nil && symm != nil {
		return nil, ca.Errorf(ca.ErrBadCSR, "DecryptKeyIdentifier names a symmetric key, and MICA holds no keys shared with clients; "+
			"name the client certificate's key with AsymmetricDecryptKeyIdentifier (1.2.840.113549.1.9.16.2.54) instead")
	}
	if asymm == nil {
		return nil, nil
	}
	var candidates []*x509.Certificate
	if p != nil && p.cert != nil {
		candidates = append(candidates, p.cert)
	}
	// With a token, the certificate presented in the handshake (or passed
	// by a trusted proxy) is not an enrollment credential, but the
	// handshake proved the client holds its key, which is all a recipient
	// needs.
	if chain, err := s.clientCert(r); err == nil && len(chain) > 0 {
		candidates = append(candidates, chain[0])
	}
	for _, c := range candidates {
		if !bytes.Equal(keyID(c), asymm) {
			continue
		}
		switch k := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < 2048 {
				return nil, ca.Errorf(ca.ErrBadCSR, "the certificate named by AsymmetricDecryptKeyIdentifier has a %d-bit RSA key; "+
					"MICA encrypts server-generated keys to RSA keys of 2048 bits or more", k.N.BitLen())
			}
			return c, nil
		case *ecdsa.PublicKey:
			if _, err := kdfFor(k.Curve); err == nil {
				return c, nil
			}
		}
		return nil, ca.Errorf(ca.ErrBadCSR, "the certificate named by AsymmetricDecryptKeyIdentifier has a %s key; "+
			"MICA encrypts server-generated keys to RSA and ECDSA P-256, P-384 and P-521 keys only", c.PublicKeyAlgorithm)
	}
	return nil, ca.Errorf(ca.ErrBadCSR, "AsymmetricDecryptKeyIdentifier %X names no certificate this client authenticated with; "+
		"it must be the subject key identifier of the TLS client certificate", asymm)
}

// keyID is a certificate's subject key identifier, or, when it has none,
// the SHA-1 of its public key bits (RFC 5280 section 4.2.1.2 method 1).
func keyID(c *x509.Certificate) []byte {
	if len(c.SubjectKeyId) > 0 {
		return c.SubjectKeyId
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

type ecdhKDF struct {
	scheme asn1.ObjectIdentifier
	hash   crypto.Hash
	curve  ecdh.Curve
}

func kdfFor(c elliptic.Curve) (ecdhKDF, error) {
	switch c {
	case elliptic.P256():
		return ecdhKDF{oidECDHSHA256KDF, crypto.SHA256, ecdh.P256()}, nil
	case elliptic.P384():
		return ecdhKDF{oidECDHSHA384KDF, crypto.SHA384, ecdh.P384()}, nil
	case elliptic.P521():
		return ecdhKDF{oidECDHSHA512KDF, crypto.SHA512, ecdh.P521()}, nil
	}
	return ecdhKDF{}, fmt.Errorf("unsupported curve %s", c.Params().Name)
}

// envelope encrypts content (a PKCS#8 key) to recip's public key as a CMS
// EnvelopedData in a ContentInfo, with AES-256-CBC content encryption.
func envelope(content []byte, recip *x509.Certificate) ([]byte, error) {
	cek := make([]byte, 32)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(cek); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(content)%aes.BlockSize
	ct := append(bytes.Clone(content), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)

	var ri []byte
	version := int64(0) // only KeyTransRecipientInfo v0 (RFC 5652 section 6.1)
	switch k := recip.PublicKey.(type) {
	case *rsa.PublicKey:
		ri, err = keyTransRecipient(cek, recip, k)
	case *ecdsa.PublicKey:
		ri, err = keyAgreeRecipient(cek, recip, k)
		version = 2 // a KeyAgreeRecipientInfo is version 3
	default:
		err = fmt.Errorf("cannot encrypt to a %s key", recip.PublicKeyAlgorithm)
	}
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidEnvelopedData)
		b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // EnvelopedData
				b.AddASN1Int64(version)
				b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(ri) })
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncryptedContentInfo
					b.AddASN1ObjectIdentifier(oidData)
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidAES256CBC)
						b.AddASN1OctetString(iv)
					})
					b.AddASN1(casn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ct) })
				})
			})
		})
	})
	return b.Bytes()
}

// addIssuerAndSerial writes the IssuerAndSerialNumber of c.
func addIssuerAndSerial(b *cryptobyte.Builder, c *x509.Certificate) {
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(c.RawIssuer)
		b.AddASN1BigInt(c.SerialNumber)
	})
}

// keyTransRecipient is a KeyTransRecipientInfo (version 0) with the
// content-encryption key under RSAES-OAEP, SHA-256 and MGF1-SHA-256.
func keyTransRecipient(cek []byte, recip *x509.Certificate, pub *rsa.PublicKey) ([]byte, error) {
	ek, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		addIssuerAndSerial(b, recip)
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidRSAESOAEP)
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // RSAES-OAEP-params
				b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSHA256) })
				})
				b.AddASN1(casn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidMGF1)
						b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSHA256) })
					})
				})
			})
		})
		b.AddASN1OctetString(ek)
	})
	return b.Bytes()
}

// keyAgreeRecipient is a KeyAgreeRecipientInfo (version 3, tagged [1] in
// RecipientInfo) for ephemeral-static ECDH (RFC 5753 section 3.1): the
// originator is a fresh key on the recipient's curve, the key-encryption
// key is the X9.63 KDF of the shared secret and ECC-CMS-SharedInfo, and
// the content-encryption key is AES-256 key-wrapped under it.
func keyAgreeRecipient(cek []byte, recip *x509.Certificate, pub *ecdsa.PublicKey) ([]byte, error) {
	kdf, err := kdfFor(pub.Curve)
	if err != nil {
		return nil, err
	}
	peer, err := pub.ECDH()
	if err != nil {
		return nil, err
	}
	eph, err := kdf.curve.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	z, err := eph.ECDH(peer)
	if err != nil {
		return nil, err
	}
	wrapAlg := func(b *cryptobyte.Builder) {
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidAES256Wrap) })
	}
	si := cryptobyte.NewBuilder(nil) // ECC-CMS-SharedInfo, RFC 5753 section 7.2
	si.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		wrapAlg(b)
		b.AddASN1(casn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString([]byte{0, 0, 1, 0}) // 256-bit key-encryption key
		})
	})
	sharedInfo, err := si.Bytes()
	if err != nil {
		return nil, err
	}
	h := kdf.hash.New()
	h.Write(z)
	h.Write([]byte{0, 0, 0, 1})
	h.Write(sharedInfo)
	kek := h.Sum(nil)[:32]
	wrapped, err := aesKeyWrap(kek, cek)
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(casn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // originator
			b.AddASN1(casn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // originatorKey
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidECPublicKey) })
				b.AddASN1(casn1.BIT_STRING, func(b *cryptobyte.Builder) {
					b.AddUint8(0)
					b.AddBytes(eph.PublicKey().Bytes())
				})
			})
		})
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // keyEncryptionAlgorithm
			b.AddASN1ObjectIdentifier(kdf.scheme)
			wrapAlg(b)
		})
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // RecipientEncryptedKeys
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addIssuerAndSerial(b, recip)
				b.AddASN1OctetString(wrapped)
			})
		})
	})
	return b.Bytes()
}

// aesKeyWrap is the AES key wrap of RFC 3394 section 2.2.1 with the
// default initial value.
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, errors.New("key wrap input must be a multiple of 64 bits, at least 128")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	a := uint64(0xA6A6A6A6A6A6A6A6)
	r := bytes.Clone(key)
	buf := make([]byte, aes.BlockSize)
	for j := range 6 {
		for i := range n {
			binary.BigEndian.PutUint64(buf[:8], a)
			copy(buf[8:], r[i*8:i*8+8])
			block.Encrypt(buf, buf)
			a = binary.BigEndian.Uint64(buf[:8]) ^ uint64(n*j+i+1)
			copy(r[i*8:i*8+8], buf[8:])
		}
	}
	return append(binary.BigEndian.AppendUint64(nil, a), r...), nil
}
