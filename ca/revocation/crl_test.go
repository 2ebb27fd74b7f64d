package revocation

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	oidInvalidityDate = asn1.ObjectIdentifier{2, 5, 29, 24}
	genBase           = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	genReasons        = []int{ReasonUnspecified, ReasonKeyCompromise, ReasonSuperseded, ReasonCessationOfOperation, ReasonAffiliationChanged}
)

// genEntry makes entry i of a deterministic synthetic CRL: a 128-bit
// serial (splitmix64 of i, so half of them have the top bit set and need a
// pad byte), one revocation per second, a spread of reasons and an
// invalidity date on every keyCompromise. serial is reused, as a database
// cursor scanning into one variable would.
func genEntry(i int, serial *big.Int) Entry {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], splitmix(uint64(i)))
	binary.BigEndian.PutUint64(b[8:], splitmix(uint64(i)+1<<40))
	serial.SetBytes(b[:])
	e := Entry{Serial: serial, RevokedAt: genBase.Add(time.Duration(i) * time.Second), Reason: genReasons[i%len(genReasons)]}
	if e.Reason == ReasonKeyCompromise {
		e.InvalidityDate = e.RevokedAt.Add(-36 * time.Hour)
	}
	return e
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// genSource streams n synthetic entries without materialising them.
func genSource(n int) EntrySource {
	return func(yield func(Entry) error) error {
		serial := new(big.Int)
		for i := range n {
			if err := yield(genEntry(i, serial)); err != nil {
				return err
			}
		}
		return nil
	}
}

// genX509Entries is the same data as genSource, as the standard library
// wants it.
func genX509Entries(n int) []x509.RevocationListEntry {
	out := make([]x509.RevocationListEntry, n)
	for i := range out {
		e := genEntry(i, new(big.Int))
		out[i] = x509.RevocationListEntry{SerialNumber: e.Serial, RevocationTime: e.RevokedAt, ReasonCode: e.Reason}
		if !e.InvalidityDate.IsZero() {
			v, err := asn1.MarshalWithParams(e.InvalidityDate, "generalized")
			if err != nil {
				panic(err)
			}
			out[i].ExtraExtensions = []pkix.Extension{{Id: oidInvalidityDate, Value: v}}
		}
	}
	return out
}

func testTemplate(n int64) CRLTemplate {
	now := time.Now().Truncate(time.Second)
	return CRLTemplate{Number: big.NewInt(n), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(7 * 24 * time.Hour)}
}

func writeCRL(t testing.TB, tmpl CRLTemplate, ca *testCA, src EntrySource) ([]byte, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := WriteCRL(&buf, tmpl, ca.issuing, ca.issuingKey, src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(buf.Len()) || st.SHA256 != sha256.Sum256(buf.Bytes()) {
		t.Fatalf("stats %+v do not describe the %d bytes written", st, buf.Len())
	}
	return buf.Bytes(), st
}

func TestWriteCRLParsesAndVerifies(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			ca := newTestCA(t, kind)
			entries := []Entry{
				{Serial: big.NewInt(0x7f), RevokedAt: genBase, Reason: ReasonUnspecified},
				{Serial: big.NewInt(0x80), RevokedAt: genBase.Add(time.Hour), Reason: ReasonKeyCompromise, InvalidityDate: genBase.Add(-time.Hour)},
				{Serial: new(big.Int).Lsh(big.NewInt(1), 159), RevokedAt: time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC), Reason: ReasonAACompromise},
				{Serial: big.NewInt(0), RevokedAt: time.Date(1999, 12, 31, 23, 59, 59, 999, time.FixedZone("x", 3600)), Reason: ReasonCertificateHold},
			}
			tmpl := testTemplate(42)
			der, st := writeCRL(t, tmpl, ca, SliceSource(entries))
			if st.Entries != int64(len(entries)) || st.Spilled {
				t.Fatalf("stats %+v", st)
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := crl.CheckSignatureFrom(ca.issuing); err != nil {
				t.Fatal(err)
			}
			if crl.Number.Int64() != 42 || !bytes.Equal(crl.AuthorityKeyId, ca.issuing.SubjectKeyId) ||
				!crl.ThisUpdate.Equal(tmpl.ThisUpdate) || !crl.NextUpdate.Equal(tmpl.NextUpdate) ||
				!bytes.Equal(crl.RawIssuer, ca.issuing.RawSubject) {
				t.Fatalf("CRL header mismatch: number %v aki %x this %v next %v", crl.Number, crl.AuthorityKeyId, crl.ThisUpdate, crl.NextUpdate)
			}
			if len(crl.RevokedCertificateEntries) != len(entries) {
				t.Fatalf("%d entries parsed", len(crl.RevokedCertificateEntries))
			}
			for i, got := range crl.RevokedCertificateEntries {
				want := entries[i]
				if got.SerialNumber.Cmp(want.Serial) != 0 || !got.RevocationTime.Equal(want.RevokedAt.Truncate(time.Second)) || got.ReasonCode != want.Reason {
					t.Errorf("entry %d: got %v %v %d, want %v %v %d", i, got.SerialNumber, got.RevocationTime, got.ReasonCode, want.Serial, want.RevokedAt, want.Reason)
				}
				var inv time.Time
				for _, ext := range got.Extensions {
					if ext.Id.Equal(oidInvalidityDate) {
						if _, err := asn1.UnmarshalWithParams(ext.Value, &inv, "generalized"); err != nil {
							t.Fatal(err)
						}
					}
				}
				if !inv.Equal(want.InvalidityDate) {
					t.Errorf("entry %d: invalidity date %v, want %v", i, inv, want.InvalidityDate)
				}
			}
		})
	}
}

// TestWriteCRLMatchesStdlib is a differential test: for the same input the
// TBSCertList must be byte-identical to x509.CreateRevocationList's.
func TestWriteCRLMatchesStdlib(t *testing.T) {
	ca := newTestCA(t, "p256")
	tmpl := testTemplate(7)
	tmpl.NextUpdate = time.Date(2050, 6, 1, 0, 0, 0, 0, time.UTC) // GeneralizedTime branch
	for _, n := range []int{0, 1, 300} {
		ours, _ := writeCRL(t, tmpl, ca, genSource(n))
		std, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: tmpl.Number, ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate,
			RevokedCertificateEntries: genX509Entries(n),
		}, ca.issuing, ca.issuingKey)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := x509.ParseRevocationList(ours)
		b, _ := x509.ParseRevocationList(std)
		if !bytes.Equal(a.RawTBSRevocationList, b.RawTBSRevocationList) {
			t.Fatalf("n=%d: TBSCertList differs from the standard library's\nours %x\nstd  %x", n, a.RawTBSRevocationList, b.RawTBSRevocationList)
		}
	}
}

func TestWriteCRLSpillsToDisk(t *testing.T) {
	ca := newTestCA(t, "p256")
	spoolDir := t.TempDir()
	tmpl := testTemplate(9)
	const n = 20000
	inMem, st := writeCRL(t, tmpl, ca, genSource(n))
	if st.Spilled {
		t.Fatal("20k entries should fit the default 1 MiB spool")
	}
	tmpl.SpoolDir, tmpl.SpoolMemory = spoolDir, 4096
	onDisk, st := writeCRL(t, tmpl, ca, genSource(n))
	if !st.Spilled || st.Entries != n {
		t.Fatalf("stats %+v", st)
	}
	left, _ := os.ReadDir(spoolDir)
	if len(left) != 0 {
		t.Fatalf("spool files left behind: %v", left)
	}
	a, err := x509.ParseRevocationList(inMem)
	if err != nil {
		t.Fatal(err)
	}
	b, err := x509.ParseRevocationList(onDisk)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckSignatureFrom(ca.issuing); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.RawTBSRevocationList, b.RawTBSRevocationList) || len(b.RevokedCertificateEntries) != n {
		t.Fatal("spilled and in-memory encodings differ")
	}
}

func TestWriteCRLExtensions(t *testing.T) {
	ca := newTestCA(t, "p256")
	tmpl := testTemplate(11)
	tmpl.DeltaOf = big.NewInt(10)
	tmpl.IssuingDistributionPoint = "http://ca.test/crl/issuing-3.crl"
	der, _ := writeCRL(t, tmpl, ca, SliceSource([]Entry{{Serial: big.NewInt(5), RevokedAt: genBase, Reason: ReasonRemoveFromCRL}}))
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	crit := map[string]bool{}
	for _, e := range crl.Extensions {
		crit[e.Id.String()] = e.Critical
	}
	if c, ok := crit["2.5.29.28"]; !ok || !c {
		t.Error("IDP missing or not critical")
	}
	if c, ok := crit["2.5.29.27"]; !ok || !c {
		t.Error("Delta CRL Indicator missing or not critical")
	}
	path := filepath.Join(ca.dir, "delta.crl")
	if err := os.WriteFile(path, der, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := openssl(t, ca.dir, "crl", "-inform", "DER", "-in", path, "-text", "-noout")
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	for _, want := range []string{"Delta CRL Indicator: critical", "Issuing Distribution Point: critical",
		"URI:http://ca.test/crl/issuing-3.crl", "Only User Certificates", "Remove From CRL"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl output lacks %q:\n%s", want, out)
		}
	}

	full := testTemplate(12)
	full.FreshestCRL = "http://ca.test/crl/issuing-delta.crl"
	der, _ = writeCRL(t, full, ca, nil)
	if err := os.WriteFile(path, der, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = openssl(t, ca.dir, "crl", "-inform", "DER", "-in", path, "-text", "-noout")
	if err != nil || !strings.Contains(out, "Freshest CRL") || !strings.Contains(out, "URI:http://ca.test/crl/issuing-delta.crl") || !strings.Contains(out, "No Revoked Certificates") {
		t.Fatalf("openssl crl on full CRL with Freshest CRL: %v\n%s", err, out)
	}
}

func TestWriteCRLRejects(t *testing.T) {
	ca := newTestCA(t, "p256")
	other := newKey(t, "p256")
	ok := Entry{Serial: big.NewInt(1), RevokedAt: genBase}
	noSKI := *ca.issuing
	noSKI.SubjectKeyId = nil
	noCRLSign := *ca.issuing
	noCRLSign.KeyUsage = x509.KeyUsageCertSign
	srcErr := errors.New("database went away")
	cases := []struct {
		name    string
		mutate  func(*CRLTemplate)
		issuer  *x509.Certificate
		signer  bool // use the wrong key
		entries []Entry
		src     EntrySource
		is      error
	}{
		{name: "nil number", mutate: func(t *CRLTemplate) { t.Number = nil }},
		{name: "negative number", mutate: func(t *CRLTemplate) { t.Number = big.NewInt(-1) }},
		{name: "21-octet number", mutate: func(t *CRLTemplate) { t.Number = new(big.Int).Lsh(big.NewInt(1), 159) }},
		{name: "delta not below number", mutate: func(t *CRLTemplate) { t.DeltaOf = t.Number }},
		{name: "nextUpdate before thisUpdate", mutate: func(t *CRLTemplate) { t.NextUpdate = t.ThisUpdate.Add(-time.Second) }},
		{name: "no nextUpdate", mutate: func(t *CRLTemplate) { t.NextUpdate = time.Time{} }},
		{name: "year 10000", mutate: func(t *CRLTemplate) { t.NextUpdate = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{name: "IDP not a URI", mutate: func(t *CRLTemplate) { t.IssuingDistributionPoint = "no scheme" }},
		{name: "issuer without SKI", issuer: &noSKI},
		{name: "issuer without cRLSign", issuer: &noCRLSign},
		{name: "wrong signer", signer: true},
		{name: "reason 7", entries: []Entry{ok, {Serial: big.NewInt(2), RevokedAt: genBase, Reason: 7}}},
		{name: "removeFromCRL in full CRL", entries: []Entry{{Serial: big.NewInt(2), RevokedAt: genBase, Reason: ReasonRemoveFromCRL}}},
		{name: "nil serial", entries: []Entry{{RevokedAt: genBase}}},
		{name: "negative serial", entries: []Entry{{Serial: big.NewInt(-3), RevokedAt: genBase}}},
		{name: "no revocation time", entries: []Entry{{Serial: big.NewInt(3)}}},
		{name: "source error", src: func(yield func(Entry) error) error { _ = yield(ok); return srcErr }, is: srcErr},
		{name: "source swallows yield error", src: func(yield func(Entry) error) error {
			_ = yield(Entry{Serial: big.NewInt(4), RevokedAt: genBase, Reason: 99})
			_ = yield(ok)
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl := testTemplate(5)
			if c.mutate != nil {
				c.mutate(&tmpl)
			}
			issuer := ca.issuing
			if c.issuer != nil {
				issuer = c.issuer
			}
			signer := ca.issuingKey
			if c.signer {
				signer = other
			}
			src := c.src
			if src == nil {
				src = SliceSource(c.entries)
			}
			var buf bytes.Buffer
			_, err := WriteCRL(&buf, tmpl, issuer, signer, src)
			if err == nil {
				t.Fatal("accepted")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v does not wrap %v", err, c.is)
			}
			if buf.Len() != 0 {
				t.Fatalf("%d bytes written despite the error", buf.Len())
			}
		})
	}
}

func TestCRLShard(t *testing.T) {
	if CRLShard(big.NewInt(12345), 1) != 0 || CRLShard(nil, 8) != 0 || CRLShard(big.NewInt(7), 0) != 0 {
		t.Fatal("degenerate shard counts must map to 0")
	}
	if got := CRLShard(big.NewInt(-7), 4); got != 1 {
		t.Fatalf("negative serial: shard %d, want 1 (Euclidean mod)", got)
	}
	var counts [16]int
	serial := new(big.Int)
	for i := range 16000 {
		k := CRLShard(genEntry(i, serial).Serial, 16)
		if k != CRLShard(new(big.Int).Set(serial), 16) {
			t.Fatal("not stable")
		}
		counts[k]++
	}
	for k, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("shard %d got %d of 16000 random serials", k, c)
		}
	}
}

func TestTimeEncoding(t *testing.T) {
	cases := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC), "\x17\x0d491231235959Z"},
		{time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC), "\x18\x0f20500101000000Z"},
		{time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC), "\x17\x0d500101000000Z"},
		{time.Date(1949, 12, 31, 23, 59, 59, 0, time.UTC), "\x18\x0f19491231235959Z"},
		{time.Date(2025, 6, 1, 2, 0, 0, 5e8, time.FixedZone("", 2*3600)), "\x17\x0d250601000000Z"},
	}
	for _, c := range cases {
		if got := string(appendTime(nil, c.t)); got != c.want {
			t.Errorf("%v: %q, want %q", c.t, got, c.want)
		}
	}
	for _, n := range []int{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 24} {
		enc := appendLength(nil, n)
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(append(append([]byte{0x04}, enc...), make([]byte, n)...), &raw); err != nil || len(raw.Bytes) != n {
			t.Errorf("length %d encoded as %x: %v", n, enc, err)
		}
	}
}

func TestReasonNames(t *testing.T) {
	for code := 0; code <= 10; code++ {
		if code == 7 {
			continue
		}
		got, err := ParseReason(strings.ToLower(ReasonName(code)))
		if err != nil || got != code {
			t.Errorf("reason %d round trip: %d %v", code, got, err)
		}
	}
	if _, err := ParseReason("bogus"); err == nil || ReasonName(7) != "reason(7)" {
		t.Error("unknown reasons must not map")
	}
}
