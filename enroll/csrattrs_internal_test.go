package enroll

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/internal/testtool"
)

// The RFC 9908 template as a Go decoder sees it.
type singleAttrTemplate struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"optional"`
}

type rdnTemplateSET []singleAttrTemplate

type spkiTemplate struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString `asn1:"optional"`
}

type criTemplate struct {
	Version    int
	Subject    []rdnTemplateSET
	PKInfo     spkiTemplate   `asn1:"optional,tag:0"`
	Attributes []csrAttribute `asn1:"tag:1,set"`
}

type extensionTemplate struct {
	ID       asn1.ObjectIdentifier
	Critical bool   `asn1:"optional"`
	Value    []byte `asn1:"optional"`
}

// TestCSRAttrsTemplate decodes the RFC 9908 template of csrattrs for a few
// profiles, checks what it asks for, re-encodes it to the same bytes, and
// has `openssl asn1parse` read the whole response.
func TestCSRAttrsTemplate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prof    ca.Profile
		alg     asn1.ObjectIdentifier
		curve   asn1.ObjectIdentifier
		sanTags []int // placeholder GeneralName tags, nil: no extension template
	}{
		{"ec-p384 dns+ip", ca.Profile{KeyTypes: []string{"EC-P384"}, DNS: []string{"*.dev.test"}, IPRanges: []string{"10.0.0.0/8"}}, oidECPublicKey, oidP384, []int{2, 7}},
		{"default key, uri+email", ca.Profile{URIs: []string{"spiffe://x/*"}, Emails: []string{"*@x.test"}}, oidECPublicKey, oidP256, []int{1, 6}},
		{"rsa cn-only", ca.Profile{KeyTypes: []string{"RSA-3072"}, CommonNames: []string{"dev-*"}}, oidRSAEncryption, nil, nil},
		{"ed25519", ca.Profile{KeyTypes: []string{"Ed25519"}, DNS: []string{"*.x"}}, oidEd25519, nil, []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := csrAttrsFor(tc.prof, true)
			if err != nil {
				t.Fatal(err)
			}
			var items []asn1.RawValue
			if rest, err := asn1.Unmarshal(der, &items); err != nil || len(rest) > 0 {
				t.Fatalf("CsrAttrs: %v", err)
			}
			var tmplDER []byte
			for _, it := range items {
				var a csrAttribute
				if _, err := asn1.Unmarshal(it.FullBytes, &a); err == nil && a.Type.Equal(oidCRITemplate) {
					if len(a.Values) != 1 {
						t.Fatalf("template attribute has %d values", len(a.Values))
					}
					tmplDER = a.Values[0].FullBytes
				}
			}
			if tmplDER == nil {
				t.Fatal("no CertificationRequestInfoTemplate in csrattrs")
			}
			var tmpl criTemplate
			if rest, err := asn1.Unmarshal(tmplDER, &tmpl); err != nil || len(rest) > 0 {
				t.Fatalf("template: %v", err)
			}
			if again, err := asn1.Marshal(tmpl); err != nil || !bytes.Equal(again, tmplDER) {
				t.Fatalf("template does not round-trip: %v\n%X\n%X", err, again, tmplDER)
			}
			if tmpl.Version != 0 || len(tmpl.Subject) != 1 || !tmpl.Subject[0][0].Type.Equal(oidCommonName) || len(tmpl.Subject[0][0].Value.FullBytes) != 0 {
				t.Fatalf("subject template %+v", tmpl.Subject)
			}
			if !tmpl.PKInfo.Algorithm.Algorithm.Equal(tc.alg) || tmpl.PKInfo.PublicKey.BitLength != 0 {
				t.Fatalf("key template %+v", tmpl.PKInfo)
			}
			if tc.curve != nil {
				var c asn1.ObjectIdentifier
				if _, err := asn1.Unmarshal(tmpl.PKInfo.Algorithm.Parameters.FullBytes, &c); err != nil || !c.Equal(tc.curve) {
					t.Fatalf("curve %v (%v), want %v", c, err, tc.curve)
				}
			}
			if tc.sanTags == nil {
				if len(tmpl.Attributes) != 0 {
					t.Fatalf("unexpected template attributes %+v", tmpl.Attributes)
				}
			} else {
				if len(tmpl.Attributes) != 1 || !tmpl.Attributes[0].Type.Equal(oidExtensionReqTemplate) {
					t.Fatalf("template attributes %+v", tmpl.Attributes)
				}
				var exts []extensionTemplate
				if _, err := asn1.Unmarshal(tmpl.Attributes[0].Values[0].FullBytes, &exts); err != nil || len(exts) != 1 || !exts[0].ID.Equal(oidSubjectAltName) {
					t.Fatalf("extension template %+v: %v", exts, err)
				}
				var gns []asn1.RawValue
				if _, err := asn1.Unmarshal(exts[0].Value, &gns); err != nil {
					t.Fatal(err)
				}
				var tags []int
				for _, g := range gns {
					if g.Class != asn1.ClassContextSpecific || len(g.Bytes) != 0 {
						t.Fatalf("placeholder %+v", g)
					}
					tags = append(tags, g.Tag)
				}
				if !slices.Equal(tags, tc.sanTags) {
					t.Fatalf("name placeholders %v, want %v", tags, tc.sanTags)
				}
			}
			// A second, independent DER parser reads the attributes.
			cmd := exec.Command(testtool.Need(t, "openssl"), "asn1parse", "-inform", "DER")
			cmd.Stdin = bytes.NewReader(der)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "1.2.840.113549.1.9.16.2.61") || strings.Contains(string(out), "Error") {
				t.Fatalf("openssl asn1parse: %v\n%s", err, out)
			}
		})
	}
}
