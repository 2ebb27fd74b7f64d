package revocation

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"hash"
	"io"
	"math/big"
	"time"
)

// Entry is one revoked certificate on a CRL.
type Entry struct {
	Serial    *big.Int  // non-negative; the encoder does not keep the pointer, so a source may reuse it
	RevokedAt time.Time // revocationDate
	// Reason is an RFC 5280 CRLReason code. ReasonUnspecified omits the
	// reasonCode extension, as RFC 5280 §5.3.1 recommends.
	Reason int
	// InvalidityDate, when set, adds the invalidityDate entry extension
	// (RFC 5280 §5.3.2). The ca layer sets it for keyCompromise, where it
	// says since when the key is suspected to have leaked.
	InvalidityDate time.Time
}

// EntrySource produces the entries of one CRL by calling yield once per
// entry, in any order, and returns yield's first non-nil error (or its
// own). It is called exactly once, so it can be a single database cursor
// with a consistent snapshot; nothing needs to be materialised. Duplicated
// serials are not detected (that would need memory per entry): the store's
// key on (issuer, serial) rules them out.
type EntrySource func(yield func(Entry) error) error

// SliceSource adapts an in-memory list, for tests and small CRLs.
func SliceSource(entries []Entry) EntrySource {
	return func(yield func(Entry) error) error {
		for _, e := range entries {
			if err := yield(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// CRLTemplate is everything about one CRL except its entries.
type CRLTemplate struct {
	// Number is the CRL Number (RFC 5280 §5.2.3): monotonically increasing
	// per issuer and scope, at most 20 octets. Full and delta CRLs share
	// one sequence.
	Number *big.Int
	// ThisUpdate and NextUpdate are both required: RFC 5280 §5.1.2.5 says
	// conforming CAs MUST include nextUpdate.
	ThisUpdate, NextUpdate time.Time
	// IssuingDistributionPoint, when set, is the URL this CRL is published
	// at; it becomes a critical IDP extension (RFC 5280 §5.2.5) with that
	// fullName URI and onlyContainsUserCerts. Use it for sharded CRLs: the
	// same URL must be in the CRL Distribution Points of every certificate
	// in the shard (see CRLShard), or relying parties such as OpenSSL treat
	// the CRL as out of scope. Leave empty for one unpartitioned CRL.
	IssuingDistributionPoint string
	// DeltaOf, when set, makes this a delta CRL against the full CRL with
	// that number: a critical Delta CRL Indicator (RFC 5280 §5.2.4). It
	// must be lower than Number.
	DeltaOf *big.Int
	// FreshestCRL, when set on a full CRL, is the URL of its delta CRLs
	// (Freshest CRL extension, RFC 5280 §5.2.6), so clients can find them.
	FreshestCRL string

	// SpoolDir and SpoolMemory are not encoded. Encoded entries stay in
	// memory up to SpoolMemory bytes (0 means 1 MiB), then go to a temp
	// file in SpoolDir ("" means os.TempDir()), deleted before return.
	SpoolDir    string
	SpoolMemory int
}

// Stats describes a CRL that was written.
type Stats struct {
	Entries int64    // revoked certificates listed
	Size    int64    // bytes of DER written to w
	Spilled bool     // the entry spool went to a temp file
	SHA256  [32]byte // digest of the DER written, e.g. for an ETag
}

// WriteCRL encodes, signs and writes one X.509 v2 CRL (RFC 5280 §5) in DER.
//
// The source is drained once, each entry encoded straight into a spool
// (about 40 bytes per entry, spilling to a temp file past
// tmpl.SpoolMemory), so heap use does not grow with the number of entries.
// The signer gets a digest of the TBSCertList, computed by reading the
// spool back; only then is anything written to w, so a failed source,
// signature or validation never leaves a partial CRL behind — only a
// failing w can. Ed25519 is the exception to bounded memory: pure Ed25519
// signs the message itself, so for an Ed25519 issuer the whole
// TBSCertList (not the ~1 KB per entry of x509.CreateRevocationList, but
// the ~40 bytes of its encoding) is held in memory.
//
// The signature algorithm follows the issuer key (see sigAlgFor), the
// signature is verified against issuer.PublicKey before anything is
// written, and the issuer needs a Subject Key Identifier for the AKI.
func WriteCRL(w io.Writer, tmpl CRLTemplate, issuer *x509.Certificate, signer crypto.Signer, entries EntrySource) (Stats, error) {
	var st Stats
	alg, exts, err := prepareCRL(&tmpl, issuer, signer)
	if err != nil {
		return st, err
	}
	limit := tmpl.SpoolMemory
	if limit <= 0 {
		limit = defaultSpoolMemory
	}
	sp := &spool{dir: tmpl.SpoolDir, limit: limit}
	defer sp.close()

	if entries != nil {
		enc := entryEncoder{delta: tmpl.DeltaOf != nil}
		var yieldErr error // kept here too, in case the source swallows it
		srcErr := entries(func(e Entry) error {
			if yieldErr != nil {
				return yieldErr
			}
			b, err := enc.encode(&e)
			if err != nil {
				yieldErr = fmt.Errorf("revocation: CRL entry %d: %w", st.Entries, err)
				return yieldErr
			}
			if _, err := sp.Write(b); err != nil {
				yieldErr = err
				return err
			}
			st.Entries++
			return nil
		})
		if yieldErr != nil {
			return st, yieldErr
		}
		if srcErr != nil {
			return st, fmt.Errorf("revocation: CRL entry source: %w", srcErr)
		}
	}
	st.Spilled = sp.spilled()

	// TBSCertList = SEQUENCE { version, signature, issuer, thisUpdate,
	// nextUpdate, revokedCertificates (absent when empty, RFC 5280 §5.1.2.6),
	// [0] crlExtensions }. prefix is everything before the entries.
	prefix := make([]byte, 0, 128+len(issuer.RawSubject))
	prefix = append(prefix, tagInteger, 1, 1) // v2
	prefix = append(prefix, alg.algID...)
	prefix = append(prefix, issuer.RawSubject...)
	prefix = appendTime(prefix, tmpl.ThisUpdate)
	prefix = appendTime(prefix, tmpl.NextUpdate)
	if st.Entries > 0 {
		prefix = appendHeader(prefix, tagSequence, int(sp.size))
	}
	tbsLen := len(prefix) + int(sp.size) + len(exts)
	tbsHead := appendHeader(nil, tagSequence, tbsLen)

	var signed []byte // digest, or for Ed25519 the TBSCertList itself
	var msg []byte
	if alg.hash == 0 {
		msg = make([]byte, 0, len(tbsHead)+tbsLen)
		msg = append(append(msg, tbsHead...), prefix...)
		if err := copySpool(sliceWriter{&msg}, sp); err != nil {
			return st, err
		}
		msg = append(msg, exts...)
		signed = msg
	} else {
		h := alg.hash.New()
		h.Write(tbsHead)
		h.Write(prefix)
		if err := copySpool(h, sp); err != nil {
			return st, err
		}
		h.Write(exts)
		signed = h.Sum(nil)
	}
	sig, err := alg.sign(signer, signed)
	if err != nil {
		return st, err
	}
	if err := alg.verify(issuer.PublicKey, signed, sig); err != nil {
		return st, err
	}

	// CertificateList = SEQUENCE { tbsCertList, signatureAlgorithm, BIT STRING }.
	tail := append(append([]byte(nil), alg.algID...), tagBitString)
	tail = appendLength(tail, len(sig)+1)
	tail = append(append(tail, 0), sig...) // 0 unused bits
	head := appendHeader(nil, tagSequence, len(tbsHead)+tbsLen+len(tail))

	hw := &hashWriter{w: w, h: sha256.New()}
	if msg != nil {
		hw.Write(head)
		hw.Write(msg)
	} else {
		hw.Write(head)
		hw.Write(tbsHead)
		hw.Write(prefix)
		if hw.err == nil {
			if err := copySpool(hw, sp); err != nil && hw.err == nil {
				hw.err = err
			}
		}
		hw.Write(exts)
	}
	hw.Write(tail)
	st.Size = hw.n
	copy(st.SHA256[:], hw.h.Sum(nil))
	if hw.err != nil {
		return st, fmt.Errorf("revocation: writing CRL: %w", hw.err)
	}
	return st, nil
}

// copySpool copies the whole spool and insists on getting all of it back.
func copySpool(w io.Writer, sp *spool) error {
	r, err := sp.open()
	if err != nil {
		return err
	}
	n, err := io.Copy(w, r)
	if err == nil && n != sp.size {
		err = fmt.Errorf("revocation: CRL spool returned %d of %d bytes", n, sp.size)
	}
	return err
}

// sliceWriter appends to a byte slice (bytes.Buffer would copy again).
type sliceWriter struct{ b *[]byte }

func (s sliceWriter) Write(p []byte) (int, error) { *s.b = append(*s.b, p...); return len(p), nil }

// hashWriter writes through to w, hashing and counting, and remembers the
// first error so the writes above need no error plumbing.
type hashWriter struct {
	w   io.Writer
	h   hash.Hash
	n   int64
	err error
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	if hw.err != nil {
		return 0, hw.err
	}
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	hw.err = err
	return n, err
}
