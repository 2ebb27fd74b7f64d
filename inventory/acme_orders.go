package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// ACMEIdentifier is an RFC 8555 identifier: type "dns" or "ip".
type ACMEIdentifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// ACMEOrder is one order. Status is the stored status; the acme package
// derives the status it shows (expiry, authorization outcomes) and writes
// transitions back with UpdateACMEOrder.
type ACMEOrder struct {
	ID           string
	AccountID    string
	Profile      string // MICA issuance profile
	Status       string
	Identifiers  []ACMEIdentifier
	NotBefore    *time.Time
	NotAfter     *time.Time
	Expires      time.Time
	Error        json.RawMessage // problem document when invalid
	CertIssuerID string
	CertSerial   string
	Replaces     string // ARI certID of the certificate this order renews
	Source       string
	CreatedAt    time.Time
	AuthzIDs     []string // filled by the read methods, in creation order
}

// ACMEAuthz is one authorization with its challenges.
type ACMEAuthz struct {
	ID         string
	OrderID    string
	AccountID  string
	Identifier ACMEIdentifier
	Wildcard   bool
	Status     string
	Expires    time.Time
	CreatedAt  time.Time
	Challenges []ACMEChallenge
}

// ACMEChallenge is one challenge of an authorization.
type ACMEChallenge struct {
	ID        string
	AuthzID   string
	Type      string
	Token     string
	Status    string
	Validated *time.Time
	Error     json.RawMessage
}

// ACMEOrderFilter selects orders, newest first.
type ACMEOrderFilter struct {
	ID           string
	AccountID    string
	Source       string
	Since        time.Time // created at or after
	CertIssuerID string
	CertSerial   string
	Limit        int // 0 means 100, capped at 1000
}

// ACMEAuthzFilter selects authorizations with their challenges.
type ACMEAuthzFilter struct {
	ID        string
	OrderID   string
	AccountID string
	Status    string
	Value     string // identifier value
	// ChallengeStatus keeps authorizations with a challenge in this
	// status (the ACME server's sweep for stuck validations).
	ChallengeStatus string
}

// ACMEOrderUpdate is a transition of an order: the new status and, when
// set, the error or the certificate.
type ACMEOrderUpdate struct {
	Status       string
	Error        json.RawMessage
	CertIssuerID string
	CertSerial   string
}

// ACMEChallengeUpdate is a transition of a challenge.
type ACMEChallengeUpdate struct {
	Status    string
	Error     json.RawMessage
	Validated *time.Time
}

type acmeOrderRow struct {
	ID           string `db:"id"`
	AccountID    string `db:"account_id"`
	Profile      string `db:"profile"`
	Status       string `db:"status"`
	Identifiers  string `db:"identifiers"`
	NotBefore    dbTime `db:"not_before"`
	NotAfter     dbTime `db:"not_after"`
	Expires      dbTime `db:"expires_at"`
	Error        string `db:"error"`
	CertIssuerID string `db:"cert_issuer_id"`
	CertSerial   string `db:"cert_serial"`
	Replaces     string `db:"replaces"`
	Source       string `db:"source"`
	CreatedAt    dbTime `db:"created_at"`
}

const acmeOrderColumns = `id, account_id, profile, status, identifiers, not_before, not_after, expires_at, error, cert_issuer_id, cert_serial, replaces, source, created_at`

type acmeAuthzRow struct {
	ID        string `db:"id"`
	OrderID   string `db:"order_id"`
	AccountID string `db:"account_id"`
	IDType    string `db:"id_type"`
	IDValue   string `db:"id_value"`
	Wildcard  bool   `db:"wildcard"`
	Status    string `db:"status"`
	Expires   dbTime `db:"expires_at"`
	CreatedAt dbTime `db:"created_at"`
}

const acmeAuthzColumns = `id, order_id, account_id, id_type, id_value, wildcard, status, expires_at, created_at`

type acmeChallengeRow struct {
	ID        string `db:"id"`
	AuthzID   string `db:"authz_id"`
	Type      string `db:"type"`
	Token     string `db:"token"`
	Status    string `db:"status"`
	Validated dbTime `db:"validated_at"`
	Error     string `db:"error"`
}

const acmeChallengeColumns = `id, authz_id, type, token, status, validated_at, error`

func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// CreateACMEOrder stores an order with its authorizations and their
// challenges in one transaction. The order's AuthzIDs are set from authzs.
//
// Errors: ErrInvalid, ErrDuplicate on an ID clash, ErrNotFound if the
// account does not exist.
func (s *Store) CreateACMEOrder(ctx context.Context, o *ACMEOrder, authzs []ACMEAuthz) error {
	if o.ID == "" || o.AccountID == "" || len(o.Identifiers) == 0 || o.Expires.IsZero() {
		return fmt.Errorf("%w: ACME order needs an id, an account, identifiers and an expiry", ErrInvalid)
	}
	for _, id := range o.Identifiers {
		if err := checkText("identifier", id.Value); err != nil {
			return err
		}
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = s.now()
	}
	o.CreatedAt, o.Expires = normTime(o.CreatedAt), normTime(o.Expires)
	ids, _ := json.Marshal(o.Identifiers)
	o.AuthzIDs = nil
	for _, a := range authzs {
		o.AuthzIDs = append(o.AuthzIDs, a.ID)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO acme_orders (`+acmeOrderColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			o.ID, o.AccountID, o.Profile, o.Status, string(ids), s.nullTimeArg(o.NotBefore), s.nullTimeArg(o.NotAfter),
			s.timeArg(o.Expires), string(o.Error), o.CertIssuerID, o.CertSerial, o.Replaces, o.Source, s.timeArg(o.CreatedAt))
		if err != nil {
			return acmeInsertErr("order", err)
		}
		for _, a := range authzs {
			created := a.CreatedAt
			if created.IsZero() {
				created = o.CreatedAt
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO acme_authzs (`+acmeAuthzColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				a.ID, o.ID, o.AccountID, a.Identifier.Type, a.Identifier.Value, a.Wildcard, a.Status, s.timeArg(a.Expires), s.timeArg(created)); err != nil {
				return acmeInsertErr("authorization", err)
			}
			for _, c := range a.Challenges {
				if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO acme_challenges (`+acmeChallengeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`),
					c.ID, a.ID, c.Type, c.Token, c.Status, s.nullTimeArg(c.Validated), string(c.Error)); err != nil {
					return acmeInsertErr("challenge", err)
				}
			}
		}
		return nil
	})
}

func acmeInsertErr(what string, err error) error {
	switch {
	case isUniqueViolation(err):
		return fmt.Errorf("%w: ACME %s id", ErrDuplicate, what)
	case isForeignKeyViolation(err):
		return fmt.Errorf("%w: ACME %s refers to a missing row", ErrNotFound, what)
	}
	return fmt.Errorf("inventory: create ACME %s: %w", what, err)
}

// FindACMEOrders returns orders matching f, newest first, with AuthzIDs.
func (s *Store) FindACMEOrders(ctx context.Context, f ACMEOrderFilter) ([]ACMEOrder, error) {
	w := s.orderWhere(f)
	var rows []acmeOrderRow
	if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT `+acmeOrderColumns+` FROM acme_orders`+w.sql()+
		fmt.Sprintf(` ORDER BY created_at DESC, id LIMIT %d`, clampLimit(f.Limit))), w.args...); err != nil {
		return nil, fmt.Errorf("inventory: find ACME orders: %w", err)
	}
	out := make([]ACMEOrder, 0, len(rows))
	for _, r := range rows {
		o := ACMEOrder{ID: r.ID, AccountID: r.AccountID, Profile: r.Profile, Status: r.Status, NotBefore: r.NotBefore.ptr(),
			NotAfter: r.NotAfter.ptr(), Expires: r.Expires.Time, Error: rawOrNil(r.Error), CertIssuerID: r.CertIssuerID,
			CertSerial: r.CertSerial, Replaces: r.Replaces, Source: r.Source, CreatedAt: r.CreatedAt.Time}
		if err := json.Unmarshal([]byte(r.Identifiers), &o.Identifiers); err != nil {
			return nil, fmt.Errorf("inventory: order %s identifiers: %w", r.ID, err)
		}
		if err := s.db.SelectContext(ctx, &o.AuthzIDs, s.q(`SELECT id FROM acme_authzs WHERE order_id = ? ORDER BY created_at, id`), r.ID); err != nil {
			return nil, fmt.Errorf("inventory: order %s authorizations: %w", r.ID, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// ACMEOrder returns one order by ID. Errors: ErrNotFound.
func (s *Store) ACMEOrder(ctx context.Context, id string) (*ACMEOrder, error) {
	os, err := s.FindACMEOrders(ctx, ACMEOrderFilter{ID: id, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(os) == 0 {
		return nil, fmt.Errorf("%w: ACME order", ErrNotFound)
	}
	return &os[0], nil
}

// CountACMEOrders counts orders matching f (rate limits); Limit is ignored.
func (s *Store) CountACMEOrders(ctx context.Context, f ACMEOrderFilter) (int, error) {
	w := s.orderWhere(f)
	var n int
	if err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM acme_orders`+w.sql()), w.args...); err != nil {
		return 0, fmt.Errorf("inventory: count ACME orders: %w", err)
	}
	return n, nil
}

func (s *Store) orderWhere(f ACMEOrderFilter) *where {
	var w where
	for col, v := range map[string]string{"id": f.ID, "account_id": f.AccountID, "source": f.Source,
		"cert_issuer_id": f.CertIssuerID, "cert_serial": f.CertSerial} {
		if v != "" {
			w.add(col+` = ?`, v)
		}
	}
	if !f.Since.IsZero() {
		w.add(`created_at >= ?`, s.timeArg(f.Since))
	}
	return &w
}

// ACMEAuthzs returns authorizations matching f with their challenges,
// oldest first.
func (s *Store) ACMEAuthzs(ctx context.Context, f ACMEAuthzFilter) ([]ACMEAuthz, error) {
	var w where
	for col, v := range map[string]string{"id": f.ID, "order_id": f.OrderID, "account_id": f.AccountID, "status": f.Status, "id_value": f.Value} {
		if v != "" {
			w.add(col+` = ?`, v)
		}
	}
	if f.ChallengeStatus != "" {
		w.add(`EXISTS (SELECT 1 FROM acme_challenges c WHERE c.authz_id = acme_authzs.id AND c.status = ?)`, f.ChallengeStatus)
	}
	var rows []acmeAuthzRow
	if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT `+acmeAuthzColumns+` FROM acme_authzs`+w.sql()+` ORDER BY created_at, id LIMIT 1000`), w.args...); err != nil {
		return nil, fmt.Errorf("inventory: find ACME authorizations: %w", err)
	}
	out := make([]ACMEAuthz, 0, len(rows))
	for _, r := range rows {
		a := ACMEAuthz{ID: r.ID, OrderID: r.OrderID, AccountID: r.AccountID, Identifier: ACMEIdentifier{Type: r.IDType, Value: r.IDValue},
			Wildcard: r.Wildcard, Status: r.Status, Expires: r.Expires.Time, CreatedAt: r.CreatedAt.Time}
		var crs []acmeChallengeRow
		if err := s.db.SelectContext(ctx, &crs, s.q(`SELECT `+acmeChallengeColumns+` FROM acme_challenges WHERE authz_id = ? ORDER BY type, id`), r.ID); err != nil {
			return nil, fmt.Errorf("inventory: challenges of %s: %w", r.ID, err)
		}
		for _, c := range crs {
			a.Challenges = append(a.Challenges, c.challenge())
		}
		out = append(out, a)
	}
	return out, nil
}

func (c acmeChallengeRow) challenge() ACMEChallenge {
	return ACMEChallenge{ID: c.ID, AuthzID: c.AuthzID, Type: c.Type, Token: c.Token, Status: c.Status,
		Validated: c.Validated.ptr(), Error: rawOrNil(c.Error)}
}

// ACMEChallenge returns one challenge by ID. Errors: ErrNotFound.
func (s *Store) ACMEChallenge(ctx context.Context, id string) (*ACMEChallenge, error) {
	var r acmeChallengeRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+acmeChallengeColumns+` FROM acme_challenges WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: ACME challenge", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read ACME challenge: %w", err)
	}
	c := r.challenge()
	return &c, nil
}

// The Update methods are compare-and-set transitions: they apply only when
// the row's current status is one of from, so two replicas (or a client
// and the validator) racing on one object cannot both move it. They return
// ErrConflict when the status had already moved on, ErrNotFound when the
// row does not exist.

// UpdateACMEOrder moves an order from one of from to u.
func (s *Store) UpdateACMEOrder(ctx context.Context, id string, from []string, u ACMEOrderUpdate) error {
	return s.transition(ctx, "acme_orders", id, from,
		`status = ?, error = ?, cert_issuer_id = CASE WHEN ? = '' THEN cert_issuer_id ELSE ? END, cert_serial = CASE WHEN ? = '' THEN cert_serial ELSE ? END`,
		u.Status, string(u.Error), u.CertIssuerID, u.CertIssuerID, u.CertSerial, u.CertSerial)
}

// UpdateACMEAuthz moves an authorization from one of from to status.
func (s *Store) UpdateACMEAuthz(ctx context.Context, id string, from []string, status string) error {
	return s.transition(ctx, "acme_authzs", id, from, `status = ?`, status)
}

// UpdateACMEChallenge moves a challenge from one of from to u.
func (s *Store) UpdateACMEChallenge(ctx context.Context, id string, from []string, u ACMEChallengeUpdate) error {
	return s.transition(ctx, "acme_challenges", id, from, `status = ?, error = ?, validated_at = ?`,
		u.Status, string(u.Error), s.nullTimeArg(u.Validated))
}

// transition runs one compare-and-set UPDATE. table and set are constants
// of this file, never caller input.
func (s *Store) transition(ctx context.Context, table, id string, from []string, set string, args ...any) error {
	if len(from) == 0 {
		return fmt.Errorf("%w: transition needs the statuses it starts from", ErrInvalid)
	}
	args = append(args, id)
	for _, f := range from {
		args = append(args, f)
	}
	q := `UPDATE ` + table + ` SET ` + set + ` WHERE id = ? AND status IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(from)), ", ") + `)`
	res, err := s.db.ExecContext(ctx, s.q(q), args...)
	if err != nil {
		return fmt.Errorf("inventory: update %s: %w", table, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var one int
	if err := s.db.GetContext(ctx, &one, s.q(`SELECT 1 FROM `+table+` WHERE id = ?`), id); errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s %s", ErrNotFound, table, truncateForError(id))
	}
	return fmt.Errorf("%w: %s %s is no longer in status %s", ErrConflict, table, truncateForError(id), strings.Join(from, "/"))
}
