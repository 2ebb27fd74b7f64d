package inventory

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// SearchFilter is the security team's view of the inventory: everything
// CertFilter selects plus ownership, tags, key strength, expiry windows
// and where the certificate was seen. Zero fields do not filter. It is the
// one filter the web UI and the admin API translate their query strings
// into, so both always agree.
type SearchFilter struct {
	CertFilter
	Owner       string // exact
	Team        string // exact
	Environment string // exact
	Tag         string // exact; the certificate carries this tag
	KeyType     string // exact ("RSA-2048"), or a family prefix ending in "-" ("RSA-")
	// ExpiringWithin keeps certificates still valid at Now whose not_after
	// falls before Now+ExpiringWithin.
	ExpiringWithin time.Duration
	// Weak keeps RSA keys under 2048 bits, SHA-1 signatures, and expired
	// certificates still seen deployed after their expiry.
	Weak bool
	// SeenSince keeps certificates with an installation seen at or after
	// it; NotSeenSince those with none seen at or after it.
	SeenSince    time.Time
	NotSeenSince time.Time
	// Sort names the column to order by: "" (newest issued first),
	// "issued", "expiry", "cn", "serial", "state", "owner", "team",
	// "environment", "issuer", "profile", "protocol" or "key_type" (the
	// Sort* constants). Ties are broken by id in the same direction.
	Sort string
	// Order is "asc", "desc" or "" for the column's natural direction:
	// descending for "" and "issued", ascending for every other column.
	Order string
	// Cursor is SearchPage.Next of the previous page; it overrides Before.
	Cursor string
}

// SearchPage is one page of Search results. Next is empty on the last page.
type SearchPage struct {
	Certificates []Certificate `json:"certificates"`
	Next         string        `json:"next,omitempty"`
}

// Weak-key thresholds of the Weak filter: RSA under 2048 bits, and the
// signature algorithms (crypto/x509 names) built on SHA-1, MD5 or MD2.
// The certificates.weak column (migration 0008) computes the same at
// write time, plus "seen deployed after not_after"; weakCryptoSQL lets a
// query tell the two apart.
const (
	weakSigAlgs   = `'SHA1-RSA', 'DSA-SHA1', 'ECDSA-SHA1', 'MD5-RSA', 'MD2-RSA'`
	weakCryptoSQL = `((substr(key_type, 1, 4) = 'RSA-' AND key_bits > 0 AND key_bits < 2048) OR sig_alg IN (` + weakSigAlgs + `))`
)

// searchWhere renders f's filters (not its cursor). plainText renders
// free text as the bare LIKEs, for the page-order probe of searchIDs.
func (s *Store) searchWhere(f SearchFilter, plainText bool) (*where, error) {
	base := f.CertFilter
	base.Before, base.Text = 0, ""
	w, err := s.certWhere(base, false)
	if err != nil {
		return nil, err
	}
	now := f.Now
	if now.IsZero() {
		now = s.now()
	}
	if t := strings.TrimSpace(f.Text); t != "" {
		cond, args := s.indexedTextCondition(t)
		if plainText {
			cond, args = s.textCondition(t)
		}
		w.add(cond, args...)
	}
	for col, v := range map[string]string{"owner": f.Owner, "team": f.Team, "environment": f.Environment} {
		if v != "" {
			w.add(col+` = ?`, v)
		}
	}
	if f.Tag != "" {
		// IN (subquery), not a correlated EXISTS: the planner starts from
		// the tag index instead of probing it for every row (1.2 s → ms at 1M).
		w.add(`id IN (SELECT cert_id FROM certificate_tags WHERE tag = ?)`, f.Tag)
	}
	if f.KeyType != "" {
		if strings.HasSuffix(f.KeyType, "-") {
			w.add(`key_type LIKE ? ESCAPE '\'`, escapeLike(f.KeyType)+"%")
		} else {
			w.add(`key_type = ?`, f.KeyType)
		}
	}
	if f.ExpiringWithin > 0 {
		w.add(`(state = ? AND not_after > ? AND not_after < ?)`, string(StateIssued), s.timeArg(now), s.timeArg(now.Add(f.ExpiringWithin)))
	}
	if f.Weak {
		// weak = 1 comes from the partial index of weak rows. It also holds
		// a certificate seen after its not_after, which is "expired but
		// still deployed" only once that not_after is past at Now.
		w.add(`weak = 1 AND (not_after <= ? OR `+weakCryptoSQL+`)`, s.timeArg(now))
	}
	// last_seen is the latest sighting of any installation (NULL: none),
	// kept by triggers on installations.
	if !f.SeenSince.IsZero() {
		w.add(`last_seen >= ?`, s.timeArg(f.SeenSince))
	}
	if !f.NotSeenSince.IsZero() {
		w.add(`(last_seen IS NULL OR last_seen < ?)`, s.timeArg(f.NotSeenSince))
	}
	return w, nil
}

// pageWhere is the keyset condition of f's cursor (or Before) for order o.
func (s *Store) pageWhere(f SearchFilter, o searchOrder) (*where, error) {
	var k where
	if f.Cursor != "" {
		if err := o.keyset(s, &k, f.Cursor); err != nil {
			return nil, err
		}
	} else if f.Before > 0 {
		k.add(`id < ?`, f.Before)
	}
	return &k, nil
}

// Search returns one page of certificates matching f, with SANs, tags and
// labels loaded, ordered by f.Sort and f.Order with ties broken by id.
// Page with SearchPage.Next (a cursor only valid with the same sort and
// order); pages never overlap or skip a row, even while rows are added.
//
// Errors: ErrInvalid for an unknown state, sort or order, a malformed
// serial, digest or cursor, or a cursor made for another sort or order.
func (s *Store) Search(ctx context.Context, f SearchFilter) (*SearchPage, error) {
	o, err := parseSort(f.Sort, f.Order)
	if err != nil {
		return nil, err
	}
	w, err := s.searchWhere(f, false)
	if err != nil {
		return nil, err
	}
	var probe *where
	if strings.TrimSpace(f.Text) != "" {
		if probe, err = s.searchWhere(f, true); err != nil {
			return nil, err
		}
	}
	k, err := s.pageWhere(f, o)
	if err != nil {
		return nil, err
	}
	limit := clampLimit(f.Limit)
	sel, selArgs, err := s.searchIDs(ctx, o, w, probe, k, limit+1)
	if err != nil {
		return nil, err
	}
	var rows []searchRow
	query := `SELECT ` + searchColumns + ` FROM certificates WHERE id IN (` + sel + `)` + o.orderBy()
	if err := s.db.SelectContext(ctx, &rows, s.q(query), selArgs...); err != nil {
		return nil, fmt.Errorf("inventory: search certificates: %w", err)
	}
	page := &SearchPage{}
	if len(rows) > limit {
		rows = rows[:limit]
		page.Next = o.cursorFor(&rows[limit-1])
	}
	page.Certificates = make([]Certificate, len(rows))
	for i := range rows {
		page.Certificates[i] = rows[i].cert()
	}
	if err := s.loadSANs(ctx, s.db, page.Certificates); err != nil {
		return nil, err
	}
	if err := s.loadLabels(ctx, page.Certificates); err != nil {
		return nil, err
	}
	return page, nil
}

// CountSearch counts every certificate matching f, ignoring paging.
// Errors: as Search.
func (s *Store) CountSearch(ctx context.Context, f SearchFilter) (int, error) {
	if _, err := parseSort(f.Sort, f.Order); err != nil {
		return 0, err
	}
	w, err := s.searchWhere(f, false)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM certificates`+w.sql()), w.args...); err != nil {
		return 0, fmt.Errorf("inventory: count certificates: %w", err)
	}
	return n, nil
}

// KeyBits is the size of a certificate's public key in bits (curve size
// for ECDSA, 256 for Ed25519), 0 when unknown.
func KeyBits(x *x509.Certificate) int {
	switch k := x.PublicKey.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen()
	case *ecdsa.PublicKey:
		return k.Curve.Params().BitSize
	case ed25519.PublicKey:
		return 256
	}
	return 0
}

// KeyTypeOf names a certificate's key the way hsm.KeyType does
// ("RSA-2048", "EC-P256", "Ed25519").
func KeyTypeOf(x *x509.Certificate) string {
	switch k := x.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC-" + strings.ReplaceAll(k.Curve.Params().Name, "-", "")
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return x.PublicKeyAlgorithm.String()
}
