package web

import (
	"crypto/x509"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

type certRow struct {
	IssuerID, Serial, CommonName, Profile, Owner, Team, NotAfter string
	State                                                        inventory.State
}

// sortCol is one sortable column header: a plain link (works without
// JavaScript, bookmarkable) keeping the other filters, and the aria-sort
// value announcing the current order.
type sortCol struct {
	Label, Href, AriaSort string
}

type certsData struct {
	Q                 url.Values
	Rows              []certRow
	Total             int
	StateNames        []string
	Cols              []sortCol
	NextHref, CSVHref string // whole URLs: html/template would escape a bare query
	Reasons           []string
	MaxBulk           int
}

var stateNames = []string{"issued", "expired", "revoked", "superseded", "requested", "failed"}

// tableCols are the certificate table's columns and their sort keys.
var tableCols = []struct{ Label, Key string }{
	{"Common name", inventory.SortCN}, {"Serial", inventory.SortSerial}, {"Issuer", inventory.SortIssuer},
	{"State", inventory.SortState}, {"Expires", inventory.SortExpiry}, {"Profile", inventory.SortProfile},
	{"Owner", inventory.SortOwner}, {"Team", inventory.SortTeam},
}

// sortCols builds the header links: a column not sorted on links to its
// ascending order, the sorted one to the opposite of its current order.
func sortCols(q url.Values) []sortCol {
	cur, order := q.Get("sort"), q.Get("order")
	if cur == "" {
		cur, order = inventory.SortIssued, inventory.OrderDesc
	}
	if order == "" {
		order = inventory.OrderAsc
		if cur == inventory.SortIssued {
			order = inventory.OrderDesc
		}
	}
	out := make([]sortCol, len(tableCols))
	for i, c := range tableCols {
		next := cloneWithout(cloneWithout(q, "cursor"), "order")
		next.Set("sort", c.Key)
		next.Set("order", inventory.OrderAsc)
		col := sortCol{Label: c.Label}
		if c.Key == cur {
			col.AriaSort = "ascending"
			if order == inventory.OrderDesc {
				col.AriaSort = "descending"
			} else {
				next.Set("order", inventory.OrderDesc)
			}
		}
		col.Href = "/ui/certificates?" + next.Encode()
		out[i] = col
	}
	return out
}

// certificatesPage: GET /ui/certificates with the API's filter parameters,
// so every view is a bookmarkable URL. Empty form fields are ignored.
func (s *Server) certificatesPage(w http.ResponseWriter, r *http.Request) {
	q := cleanQuery(r.URL.Query())
	now := s.now()
	data := certsData{Q: q, StateNames: stateNames, Cols: sortCols(q), Reasons: revocationReasons(), MaxBulk: MaxBulk}
	f, err := ParseFilter(q, now)
	if err != nil {
		s.render(w, r, http.StatusBadRequest, "certificates", "Certificates", err.Error(), data)
		return
	}
	page, err := s.store.Search(r.Context(), f)
	if err == nil {
		data.Total, err = s.store.CountSearch(r.Context(), f)
	}
	if err != nil {
		s.render(w, r, statusOf(err), "certificates", "Certificates", messageOf(err), data)
		return
	}
	for _, c := range page.Certificates {
		row := certRow{IssuerID: c.IssuerID, Serial: c.Serial, CommonName: c.CommonName, Profile: c.Profile,
			NotAfter: c.NotAfter.UTC().Format("2006-01-02"), State: c.EffectiveState(now)}
		if c.Labels != nil {
			row.Owner, row.Team = c.Labels.Owner, c.Labels.Team
		}
		data.Rows = append(data.Rows, row)
	}
	if page.Next != "" {
		next := cloneWithout(q, "cursor")
		next.Set("cursor", page.Next)
		data.NextHref = "/ui/certificates?" + next.Encode()
	}
	data.CSVHref = "/ui/certificates.csv?" + cloneWithout(q, "cursor").Encode()
	s.render(w, r, http.StatusOK, "certificates", "Certificates", "", data)
}

// maxCSVRows bounds one export.
const maxCSVRows = 100000

// certificatesCSV exports every certificate matching the filter (up to
// maxCSVRows), paging through the store with the keyset cursor.
func (s *Server) certificatesCSV(w http.ResponseWriter, r *http.Request) {
	q := cleanQuery(r.URL.Query())
	now := s.now()
	f, err := ParseFilter(q, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.Limit = 1000
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="certificates.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"issuer", "serial", "common_name", "sans", "state", "not_before", "not_after", "profile", "protocol",
		"key_type", "owner", "team", "environment", "tags", "fingerprint_sha256"})
	for n := 0; n < maxCSVRows; {
		page, err := s.store.Search(r.Context(), f)
		if err != nil {
			s.log.Error("CSV export", "err", err)
			return
		}
		for _, c := range page.Certificates {
			l := c.Labels
			if l == nil {
				l = &inventory.Labels{}
			}
			rec := []string{c.IssuerID, inventory.FormatSerial(c.Serial), c.CommonName, strings.Join(c.SANs, " "), string(c.EffectiveState(now)),
				c.NotBefore.UTC().Format("2006-01-02T15:04:05Z"), c.NotAfter.UTC().Format("2006-01-02T15:04:05Z"), c.Profile, c.Protocol,
				c.KeyType, l.Owner, l.Team, l.Environment, strings.Join(l.Tags, " "), c.FingerprintSHA256}
			for i := range rec {
				rec[i] = csvSafe(rec[i])
			}
			_ = cw.Write(rec)
		}
		n += len(page.Certificates)
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	cw.Flush()
}

// csvSafe defuses spreadsheet formulas in attacker-influenced fields
// (a CSR's common name could start with "=").
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

type certData struct {
	C             *inventory.Certificate
	X             *x509.Certificate
	State         inventory.State
	Chain         []string
	Installations []inventory.Installation
	Events        []inventory.Event
	Revocable     bool
	Reasons       []string
	TagText       string // the tags as the label form shows them
	F             certFields
	RenewedBy     []certLink // the successor, resolved across issuers
}

// certificatePage: GET /ui/certificates/{issuer}/{serial}[.pem]
func (s *Server) certificatePage(w http.ResponseWriter, r *http.Request) {
	issuer, serial := chi.URLParam(r, "issuer"), chi.URLParam(r, "serial")
	serial, wantPEM := strings.CutSuffix(serial, ".pem")
	c, err := s.store.CertificateDetail(r.Context(), issuer, serial)
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Certificate", messageOf(err), listData{})
		return
	}
	if wantPEM {
		s.writePEMChain(w, r, c)
		return
	}
	d := certData{C: c, State: c.EffectiveState(s.now())}
	if x, err := x509.ParseCertificate(c.DER); err == nil {
		d.X = x
		d.F = decodeFields(x)
	}
	iss, err := s.store.Issuers(r.Context())
	if err == nil {
		d.Chain = chainOf(iss, c.IssuerID)
	}
	d.RenewedBy = s.successorLinks(r.Context(), c, iss)
	if c.FingerprintSHA256 != "" {
		d.Installations, _ = s.store.Installations(r.Context(), c.FingerprintSHA256)
	}
	d.Events, _ = s.store.Events(r.Context(), inventory.EventFilter{Object: "cert:" + c.IssuerID + "/" + c.Serial, Limit: 100})
	d.Revocable = c.State == inventory.StateIssued || c.State == inventory.StateSuperseded
	d.Reasons = revocationReasons()
	if c.Labels != nil {
		d.TagText = strings.Join(c.Labels.Tags, " ")
	}
	s.render(w, r, http.StatusOK, "certificate", c.CommonName, "", d)
}

// uiRevoke: POST /ui/certificates/{issuer}/{serial}/revoke (reason=…),
// through ca.Revoke, which audits it.
func (s *Server) uiRevoke(w http.ResponseWriter, r *http.Request) {
	issuer, serial := chi.URLParam(r, "issuer"), chi.URLParam(r, "serial")
	_, err := s.rev.Revoke(r.Context(), ca.RevokeRequest{IssuerID: issuer, Serial: serial, Reason: r.PostFormValue("reason"),
		Actor: "user:" + uiUser(r.Context()).Name, Protocol: "ui", Source: sourceOf(r)})
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Revocation failed", messageOf(err), listData{})
		return
	}
	redirectDone(w, r, "/ui/certificates/"+url.PathEscape(issuer)+"/"+url.PathEscape(serial), "revoked")
}

// revocationReasons lists ca's reason names, "unspecified" first.
func revocationReasons() []string {
	var out []string
	for k := range ca.RevocationReasons {
		out = append(out, k)
	}
	slices.Sort(out)
	if i := slices.Index(out, "unspecified"); i > 0 {
		out = append([]string{"unspecified"}, slices.Delete(out, i, i+1)...)
	}
	return out
}

// chainOf names the issuer and its parents up to the root.
func chainOf(issuers []inventory.Issuer, id string) []string {
	byID := map[string]inventory.Issuer{}
	for _, i := range issuers {
		byID[i.ID] = i
	}
	var out []string
	for range 10 {
		i, ok := byID[id]
		if !ok {
			break
		}
		out = append(out, i.ID+": "+i.Subject)
		if i.IsRoot || i.ParentID == "" {
			break
		}
		id = i.ParentID
	}
	return out
}

func ekuName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	}
	return fmt.Sprintf("eku(%d)", u)
}

// cleanQuery drops empty values, which an HTML form submits for every
// blank field.
func cleanQuery(q url.Values) url.Values {
	out := url.Values{}
	for k, vs := range q {
		for _, v := range vs {
			if v = strings.TrimSpace(v); v != "" && k != "done" {
				out.Add(k, v)
			}
		}
	}
	return out
}

func cloneWithout(q url.Values, drop string) url.Values {
	out := url.Values{}
	for k, vs := range q {
		if k != drop {
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}
