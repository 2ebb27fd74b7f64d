package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// listedKey mirrors `mica keys list --json` rows (the fields tests use).
type listedKey struct {
	ID         string     `json:"id"`
	Class      string     `json:"class"`
	Status     string     `json:"status"`
	Signatures int64      `json:"signatures"`
	PublicKey  []byte     `json:"public_key"`
	URI        string     `json:"uri"`
	DueIn      string     `json:"due_in"`
	Created    time.Time  `json:"created"`
	FirstUsed  *time.Time `json:"first_used"`
}

func (c *tca) keys() map[string]listedKey {
	c.t.Helper()
	r := c.must(c.data("keys", "list", "--json")...)
	var ks []listedKey
	if err := json.Unmarshal([]byte(r.stdout), &ks); err != nil {
		c.t.Fatalf("keys list --json: %v\n%s", err, r.stdout)
	}
	out := map[string]listedKey{}
	for _, k := range ks {
		out[k.ID] = k
	}
	return out
}

// TestKeysRotateOnline runs the binary: usage is counted from the signing
// path (each CLI issuance costs the issuing key two signatures, the
// certificate and its pre-signed OCSP response), an online-root rotation
// moves new issuance to the new key while old certificates still verify,
// and the old key can be neither retired nor destroyed while its
// certificates are unexpired.
func TestKeysRotateOnline(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testKeysRotateOnline(t, newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testKeysRotateOnline(t, newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing", "--database", inventorytest.PostgresDSN(t)))
	})
}

func testKeysRotateOnline(t *testing.T, c *tca) {
	oldLeaf := filepath.Join(t.TempDir(), "old.pem")
	const n = 3
	for i := range n {
		c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "a.test"}), "--profile", "server", "--out", oldLeaf)...)
		_ = i
	}
	ks := c.keys()
	// init: the issuing key signed its CSR; the root its own certificate,
	// the issuing CA's and its first CRL. Then two per issuance
	// (certificate and OCSP).
	if k := ks["issuing"]; k.Signatures != 2*n+1 || k.Class != "issuing" || k.Status != "active" || k.DueIn == "" {
		t.Errorf("issuing key after %d issuances = %+v, want %d signatures, active, rotation due", n, k, 2*n+1)
	}
	if k := ks["root"]; k.Class != "root" || k.Signatures != 3 {
		t.Errorf("root key = %+v, want 3 signatures from init", k)
	}

	out := c.must(c.data("ca", "rotate", "--id", "issuing-2")...).stdout
	if !strings.Contains(out, "issuing-2") {
		t.Errorf("ca rotate: %s", out)
	}
	newLeaf := filepath.Join(t.TempDir(), "new.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "b.test"}), "--profile", "server", "--out", newLeaf)...)
	chain := readCerts(t, newLeaf)
	if len(chain) < 2 || !strings.Contains(chain[1].Subject.CommonName, "Issuing CA") || chain[0].CheckSignatureFrom(chain[1]) != nil {
		t.Fatalf("new leaf chain = %v", chain)
	}
	oldIssuer := readCerts(t, filepath.Join(c.dir, issuingPEM))[0]
	if chain[1].Equal(oldIssuer) {
		t.Error("after rotation new issuance still uses the old issuing CA")
	}
	mid := filepath.Join(t.TempDir(), "mid.pem")
	if err := os.WriteFile(mid, encodeCerts(chain[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	for leaf, inter := range map[string]string{oldLeaf: filepath.Join(c.dir, issuingPEM), newLeaf: mid} {
		if o := openssl(t, "verify", "-CAfile", filepath.Join(c.dir, rootPEM), "-untrusted", inter, leaf); !strings.Contains(o, "OK") {
			t.Errorf("openssl verify %s: %s", leaf, o)
		}
	}
	ks = c.keys()
	// issuing-2: its own CSR (proof of possession) + certificate + OCSP;
	// root: init's 3 + the new CA certificate.
	if ks["issuing-2"].Signatures != 3 || ks["issuing"].Signatures != 2*n+1 || ks["root"].Signatures != 4 {
		t.Errorf("signature counts after rotation: issuing=%d issuing-2=%d root=%d, want %d, 3, 4",
			ks["issuing"].Signatures, ks["issuing-2"].Signatures, ks["root"].Signatures, 2*n+1)
	}
	wantExit(t, c.run(c.data("keys", "retire", "issuing")...), exitRefused, "unexpired certificates")
	wantExit(t, c.run(c.data("keys", "destroy", "issuing", "--confirm")...), exitRefused, "retire it")
	wantExit(t, c.run(c.data("keys", "destroy", "issuing")...), exitUsage, "--confirm")
}

// TestKeysRotateOffline: the offline round trip with the real binary:
// rotate --csr-out online, sign-intermediate with the offline root's
// directory and secret, import online; issuance moves to the new CA.
func TestKeysRotateOffline(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	secret := newSecret(t)
	sf := writeSecret(t, t.TempDir(), "passphrase", secret)
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "data"), secrets: []string{secret}}
	c.must("init", "--data", c.dir, "--secret-file", sf, "--offline-root", "--root-id", "root", "--issuing-id", "issuing")
	// The root leaves this machine.
	offline := filepath.Join(t.TempDir(), "safe")
	if err := os.Rename(filepath.Join(c.dir, offlineDir), offline); err != nil {
		t.Fatal(err)
	}
	wantExit(t, c.run(c.data("ca", "rotate")...), exitConfig, "offline")
	csr := filepath.Join(t.TempDir(), "next.csr")
	c.must(c.data("ca", "rotate", "--id", "issuing-2", "--csr-out", csr)...)
	if k := c.keys()["issuing-2"]; k.Status != "pre-activation" {
		t.Errorf("pending key = %+v", k)
	}
	signed := filepath.Join(t.TempDir(), "issuing-2.pem")
	c.must("ca", "sign-intermediate", "--root-backend", "softkms:dir="+offline, "--root-id", "root",
		"--root-cert", filepath.Join(offline, rootPEM), "--csr", csr, "--out", signed, "--secret-file", sf)
	c.must(c.data("ca", "import", signed)...)
	if k := c.keys()["issuing-2"]; k.Status != "active" {
		t.Errorf("imported key = %+v", k)
	}
	leaf := filepath.Join(t.TempDir(), "leaf.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "c.test"}), "--profile", "server", "--out", leaf)...)
	if o := openssl(t, "verify", "-CAfile", filepath.Join(c.dir, rootPEM), "-untrusted", signed, leaf); !strings.Contains(o, "OK") {
		t.Errorf("openssl verify via the imported CA: %s", o)
	}
}

// TestKeysDestroySoftHSM: on a real SoftHSM2 token, a superseded issuing
// key with no certificates is retired, refused while inside its retention
// period, and destroyed once key_policy.retention allows: pkcs11-tool no longer
// lists its private key, while the inventory keeps its public key; the
// root, which signed live issuing CAs, cannot be destroyed.
//
// Not parallel: SOFTHSM2_CONF is process-wide.
func TestKeysDestroySoftHSM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping SoftHSM2")
	}
	uri, pin := hsmtest.SoftHSM(t)
	requireTool(t, "pkcs11-tool")
	module, err := hsmtest.Module()
	if err != nil {
		t.Fatal(err)
	}
	c := &tca{t: t, dir: filepath.Join(t.TempDir(), "data")}
	pinFile := writeSecret(t, t.TempDir(), "pin", string(pin.Bytes()))
	c.must("init", "--data", c.dir, "--backend", uri, "--secret-file", pinFile, "--root-id", "root", "--issuing-id", "issuing")
	c.must(c.data("ca", "rotate", "--id", "issuing-2")...)
	privs := func() map[string]bool {
		m := map[string]bool{}
		for _, o := range listObjects(t, module, hsmtest.TokenLabel, string(pin.Bytes())) {
			if strings.HasPrefix(o.kind, "Private Key Object") {
				m[o.label] = true
			}
		}
		return m
	}
	if p := privs(); !p["issuing"] || !p["issuing-2"] || !p["root"] {
		t.Fatalf("token private keys before destroy: %v", p)
	}
	wantExit(t, c.run(c.data("keys", "destroy", "issuing", "--confirm")...), exitRefused, "retire it")
	c.must(c.data("keys", "retire", "issuing")...)
	// The default retention keeps a retired issuing key for 90 days; the
	// refusal names the date it becomes destroyable.
	until := time.Now().Add(90 * 24 * time.Hour).UTC().Format("2006-01-02")
	wantExit(t, c.run(c.data("keys", "destroy", "issuing", "--confirm")...), exitRefused, "retention period until "+until)
	if !privs()["issuing"] {
		t.Fatal("a destroy refused for retention removed the key")
	}
	appendYAML(t, c.dir, "\nkey_policy:\n  retention: {issuing: 0}\n")
	wantExit(t, c.run(c.data("keys", "destroy", "issuing")...), exitUsage, "--confirm")
	c.must(c.data("keys", "destroy", "issuing", "--confirm")...)
	if p := privs(); p["issuing"] || !p["issuing-2"] || !p["root"] {
		t.Errorf("token private keys after destroying issuing: %v, want issuing-2 and root only", p)
	}
	k := c.keys()["issuing"]
	if k.Status != "destroyed" || len(k.PublicKey) == 0 {
		t.Errorf("destroyed key in the inventory = %+v, want destroyed with its public key", k)
	}
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "hsm.test"}), "--profile", "server")...)
	c.must(c.data("keys", "retire", "root", "--force")...)
	wantExit(t, c.run(c.data("keys", "destroy", "root", "--confirm")...), exitRefused, "its CRL duty is live")
	if !privs()["root"] {
		t.Error("a refused destroy removed the root key")
	}

	// Backup of an HSM CA: the keys stay on the token, the backup holds
	// their URIs, and the drill re-binds them to issue and sign OCSP.
	pass := writeSecret(t, t.TempDir(), "bp", "a long backup passphrase")
	b := filepath.Join(t.TempDir(), "hsm.age")
	if out := c.must(c.data("backup", "create", "--out", b, "--passphrase-file", pass)...).stdout; !strings.Contains(out, "2 HSM keys by reference") {
		t.Errorf("backup create of an HSM CA: %s", out)
	}
	if out := c.must("backup", "verify", b, "--passphrase-file", pass).stdout; !strings.Contains(out, "test issuance by issuing-2") {
		t.Errorf("backup verify of an HSM CA: %s", out)
	}
}

// TestReportKeys: a fresh software CA fails the backup check and warns
// about software CA keys and an online root; a backup alone does not
// pass the check, a verified one (recorded by verify --data) does.
func TestReportKeys(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	type report struct {
		Checks []struct {
			ID, Result string
			Controls   []string
		} `json:"checks"`
	}
	get := func() map[string]string {
		var r report
		out := c.must(c.data("report", "keys", "--format", "json")...).stdout
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("report keys --format json: %v\n%s", err, out)
		}
		m := map[string]string{}
		for _, ch := range r.Checks {
			m[ch.ID] = ch.Result
		}
		return m
	}
	r := get()
	if r["backup"] != "fail" || r["hsm"] != "warn" || r["root-offline"] != "warn" || r["audit"] != "pass" || r["algorithms"] != "pass" {
		t.Errorf("report on a fresh software CA = %v", r)
	}
	pass := writeSecret(t, t.TempDir(), "bp", "a long backup passphrase")
	b := filepath.Join(t.TempDir(), "b.age")
	c.must(c.data("backup", "create", "--out", b, "--passphrase-file", pass)...)
	if r := get(); r["backup"] != "fail" {
		t.Errorf("backup check after an unverified backup = %s, want fail", r["backup"])
	}
	c.must(c.data("backup", "verify", b, "--passphrase-file", pass)...)
	if r := get(); r["backup"] != "pass" {
		t.Errorf("backup check after a backup = %s", r["backup"])
	}
	md := c.must(c.data("report", "keys")...).stdout
	if !strings.Contains(md, "| check | result | controls | evidence |") || !strings.Contains(md, "ISO/IEC 27002:2022 8.24") {
		t.Errorf("markdown report:\n%s", md)
	}
}

// TestReportComplianceWeakConfig: a deliberately weak configuration — an
// RSA-1024 profile, an issuing key past its cryptoperiod, no backup — is
// flagged with the right controls in every format; the HTML page parses,
// holds every check and no script; each run is an audit event. On SQLite
// and on PostgreSQL (when MICA_TEST_POSTGRES_DSN is set).
func TestReportComplianceWeakConfig(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			args := []string{"--root-id", "root", "--issuing-id", "issuing"}
			var dsn string
			if backend == "postgres" {
				dsn = inventorytest.PostgresDSN(t) // skips without MICA_TEST_POSTGRES_DSN
				args = append(args, "--database", dsn)
			}
			c := newSoftCA(t, args...)
			if dsn == "" {
				dsn = "sqlite:" + filepath.Join(c.dir, "mica.db")
			}
			f, err := os.OpenFile(filepath.Join(c.dir, "mica.yaml"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("\nprofiles:\n  legacy:\n    dns: [\"*\"]\n    max_lifetime: 90d\n    key_types: [RSA-1024]\n" +
				"key_policy:\n  cryptoperiods: {issuing: 1s}\n")
			f.Close()
			if keys := c.keys(); keys["issuing"].DueIn == "" {
				t.Fatalf("issuing key has no rotation due date: %+v", keys["issuing"])
			}
			type check struct {
				ID, Result string
				Controls   []string
			}
			var rep struct {
				Summary map[string]int `json:"summary"`
				Checks  []check        `json:"checks"`
			}
			out := c.must(c.data("report", "compliance", "--format", "json")...).stdout
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("report compliance --format json: %v\n%s", err, out)
			}
			byID := map[string]check{}
			for _, ch := range rep.Checks {
				byID[ch.ID] = ch
			}
			for _, tc := range []struct{ id, result, control string }{
				{"algorithms", "fail", "NIST SP 800-57 Pt1 §5.6.1-5.6.2"},
				{"backup", "fail", "NIST SP 800-57 Pt1 §8.2.2.1"},
				{"hsm", "warn", "ISO/IEC 27002:2022 8.24 (key generation and storage)"},
				{"audit", "pass", "ISO/IEC 27002:2022 8.15"},
				{"users-roles", "fail", "ISO/IEC 27002:2022 8.2 (privileged access)"}, // no UI admin exists
				{"crl-freshness", "fail", "ISO/IEC 27002:2022 8.24 (revocation)"},     // no server ran: no CRL published
			} {
				ch, ok := byID[tc.id]
				if !ok || ch.Result != tc.result || !slices.Contains(ch.Controls, tc.control) {
					t.Errorf("check %s = %+v, want %s citing %q", tc.id, ch, tc.result, tc.control)
				}
			}
			if cp := byID["cryptoperiods"]; cp.Result != "fail" || !slices.Contains(cp.Controls, "NIST SP 800-57 Pt1 §5.3") {
				t.Errorf("cryptoperiods = %+v, want the short policy flagged\n%s", cp, out)
			}

			page := c.must(c.data("report", "compliance", "--format", "html")...).stdout
			doc, err := html.Parse(strings.NewReader(page))
			if err != nil {
				t.Fatalf("HTML report does not parse: %v", err)
			}
			ids := map[string]bool{}
			scripts := 0
			var walk func(n *html.Node)
			walk = func(n *html.Node) {
				if n.Type == html.ElementNode {
					if n.Data == "script" {
						scripts++
					}
					for _, a := range n.Attr {
						if a.Key == "id" {
							ids[a.Val] = true
						}
						if a.Key == "src" || a.Key == "href" {
							scripts++ // self-contained: nothing fetched
						}
					}
				}
				for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
					walk(ch)
				}
			}
			walk(doc)
			for id := range byID {
				if !ids["check-"+id] {
					t.Errorf("HTML report lacks check %s", id)
				}
			}
			if scripts != 0 {
				t.Errorf("HTML report loads %d scripts or resources, want none", scripts)
			}
			if !strings.Contains(page, "NIST SP 800-57 Pt1 §8.2.2.1") {
				t.Error("HTML report does not name the controls")
			}
			if r := c.run(c.data("report", "compliance", "--format", "pdf")...); r.code == 0 {
				t.Error("--format pdf accepted")
			}

			st, err := inventory.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			evs, err := st.Events(context.Background(), inventory.EventFilter{Action: "report.compliance", Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 2 || evs[0].Protocol != "cli" || evs[0].Object != "report:compliance" || !strings.Contains(string(evs[0].Details), `"fail"`) {
				t.Errorf("report.compliance audit events = %+v, want 2 CLI runs with their counts", evs)
			}
		})
	}
}

// TestKeysListSecrets: `keys list` shows a configured webhook's HMAC
// secret by its source with usage "not metered", never the secret.
func TestKeysListSecrets(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	secret := newSecret(t)
	c.secrets = append(c.secrets, secret)
	sf := writeSecret(t, t.TempDir(), "hook", secret)
	f, err := os.OpenFile(filepath.Join(c.dir, "mica.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\nalerts:\n  webhooks:\n    - url: https://alerts.example.test/hook\n      secret_file: " + sf + "\n")
	f.Close()
	out := c.must(c.data("keys", "list")...).stdout // checks that no secret is printed
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "webhook-1 ") {
			line = l
		}
	}
	for _, want := range []string{"webhook-hmac", "config", "not metered", "HMAC-SHA256-" + fmt.Sprint(8*(len(secret))), "file:" + sf} {
		if !strings.Contains(line, want) {
			t.Errorf("keys list row for the webhook secret lacks %q:\n%s", want, out)
		}
	}
	if k := c.keys()["webhook-1"]; k.Class != "webhook-hmac" || k.Status != "active" || k.DueIn == "" {
		t.Errorf("webhook key = %+v", k)
	}
}

// appendYAML appends text to the CA's mica.yaml.
func appendYAML(t *testing.T, dir, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "mica.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestKeysListTable: the text table of `keys list` shows when each key
// was created and first used, as dates (UTC), matching --json; a key
// never used shows "-".
func TestKeysListTable(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t, "--root-id", "root", "--issuing-id", "issuing")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "table.test"}), "--profile", "server")...)
	keys := c.keys()
	out := c.must(c.data("keys", "list")...).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	cols := regexp.MustCompile(`\s{2,}`)
	header := cols.Split(lines[0], -1)
	idx := map[string]int{}
	for i, h := range header {
		idx[h] = i
	}
	for _, h := range []string{"CREATED", "FIRST USED", "LAST USED", "ROTATION DUE"} {
		if _, ok := idx[h]; !ok {
			t.Fatalf("keys list header %q lacks %s", lines[0], h)
		}
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := cols.Split(l, -1)
		rows[f[0]] = f
	}
	date := func(tm *time.Time) string {
		if tm == nil {
			return "-"
		}
		return tm.UTC().Format("2006-01-02")
	}
	issuing, root := keys["issuing"], keys["root"]
	if issuing.FirstUsed == nil {
		t.Fatalf("issuing key has no first use after an issuance: %+v", issuing)
	}
	for id, want := range map[string][2]string{
		"issuing": {date(&issuing.Created), date(issuing.FirstUsed)},
		"root":    {date(&root.Created), date(root.FirstUsed)},
	} {
		row := rows[id]
		if len(row) != len(header) {
			t.Fatalf("keys list row %s has %d columns, header %d:\n%s", id, len(row), len(header), out)
		}
		if row[idx["CREATED"]] != want[0] || row[idx["FIRST USED"]] != want[1] {
			t.Errorf("keys list %s: CREATED %q, FIRST USED %q; want %q, %q", id, row[idx["CREATED"]], row[idx["FIRST USED"]], want[0], want[1])
		}
	}
}
