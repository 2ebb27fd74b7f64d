package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// ESTPending is an EST enrollment held for an operator's approval. The
// device's retry with the same CSR finds it by (Label, CSRSHA256).
type ESTPending struct {
	ID           string    `db:"id" json:"id"`
	Label        string    `db:"label" json:"label"`
	CSRSHA256    string    `db:"csr_sha256" json:"csr_sha256"`
	CSR          []byte    `db:"csr" json:"-"`
	Requester    string    `db:"requester" json:"requester"`
	Identifiers  []string  `db:"-" json:"identifiers"` // nil: the CSR's names
	Source       string    `db:"source" json:"source"`
	Status       string    `db:"status" json:"status"` // pending, approved, rejected, issued
	CertIssuerID string    `db:"cert_issuer_id" json:"cert_issuer_id,omitempty"`
	CertSerial   string    `db:"cert_serial" json:"cert_serial,omitempty"`
	DecidedBy    string    `db:"decided_by" json:"decided_by,omitempty"`
	CreatedAt    time.Time `db:"-" json:"created_at"`
	UpdatedAt    time.Time `db:"-" json:"updated_at"`
}

type estPendingRow struct {
	ESTPending
	IdentifiersJSON string `db:"identifiers"`
	Created         dbTime `db:"created_at"`
	Updated         dbTime `db:"updated_at"`
}

const estPendingColumns = `id, label, csr_sha256, csr, requester, identifiers, source, status, cert_issuer_id, cert_serial, decided_by, created_at, updated_at`

func (r *estPendingRow) pending() (*ESTPending, error) {
	p := r.ESTPending
	p.CreatedAt, p.UpdatedAt = r.Created.Time, r.Updated.Time
	if err := json.Unmarshal([]byte(r.IdentifiersJSON), &p.Identifiers); err != nil {
		return nil, fmt.Errorf("inventory: EST pending %s: %w", r.ID, err)
	}
	return &p, nil
}

// PutESTPending stores a new held enrollment with ev.
// Errors: ErrDuplicate when label already holds this CSR.
// ev defaults: Action "est.pending.create", Object "est-pending:{id}".
func (s *Store) PutESTPending(ctx context.Context, p *ESTPending, ev Event) error {
	ids, err := json.Marshal(p.Identifiers)
	if err != nil {
		return err
	}
	now := s.now()
	p.CreatedAt, p.UpdatedAt, p.Status = now, now, "pending"
	defaultEvent(&ev, "est.pending.create", "est-pending:"+p.ID)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO est_pending (`+estPendingColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', '', '', ?, ?)`),
			p.ID, p.Label, p.CSRSHA256, p.CSR, p.Requester, string(ids), p.Source, p.Status, s.timeArg(now), s.timeArg(now))
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: this CSR is already held", ErrDuplicate)
		}
		if err != nil {
			return fmt.Errorf("inventory: put EST pending: %w", err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// ESTPendingByCSR finds the held enrollment of label with this CSR digest.
func (s *Store) ESTPendingByCSR(ctx context.Context, label, csrSHA256 string) (*ESTPending, error) {
	return s.getESTPending(ctx, `label = ? AND csr_sha256 = ?`, label, csrSHA256)
}

// ESTPendingByID returns one held enrollment.
func (s *Store) ESTPendingByID(ctx context.Context, id string) (*ESTPending, error) {
	return s.getESTPending(ctx, `id = ?`, id)
}

func (s *Store) getESTPending(ctx context.Context, cond string, args ...any) (*ESTPending, error) {
	var row estPendingRow
	err := s.db.GetContext(ctx, &row, s.q(`SELECT `+estPendingColumns+` FROM est_pending WHERE `+cond), args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: EST pending enrollment", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read EST pending: %w", err)
	}
	return row.pending()
}

// ESTPendings lists held enrollments in status (all when empty), oldest first.
func (s *Store) ESTPendings(ctx context.Context, status string) ([]ESTPending, error) {
	var rows []estPendingRow
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT `+estPendingColumns+` FROM est_pending WHERE (? = '' OR status = ?) ORDER BY created_at LIMIT 1000`), status, status)
	if err != nil {
		return nil, fmt.Errorf("inventory: list EST pending: %w", err)
	}
	out := make([]ESTPending, 0, len(rows))
	for i := range rows {
		p, err := rows[i].pending()
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

// DecideESTPending moves a pending enrollment to approved or rejected,
// with ev. ErrNotFound if absent, ErrConflict if it is no longer pending.
// ev defaults: Action "est.pending.{status}", Object "est-pending:{id}".
func (s *Store) DecideESTPending(ctx context.Context, id, status, by string, ev Event) error {
	if status != "approved" && status != "rejected" {
		return fmt.Errorf("%w: decision %q", ErrInvalid, status)
	}
	defaultEvent(&ev, "est.pending."+status, "est-pending:"+id)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE est_pending SET status = ?, decided_by = ?, updated_at = ? WHERE id = ? AND status = 'pending'`),
			status, by, s.timeArg(s.now()), id)
		if err != nil {
			return fmt.Errorf("inventory: decide EST pending: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			var st string
			if err := tx.GetContext(ctx, &st, s.q(`SELECT status FROM est_pending WHERE id = ?`), id); errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: EST pending enrollment %s", ErrNotFound, id)
			}
			return fmt.Errorf("%w: EST pending enrollment %s is %s", ErrConflict, id, st)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// FinishESTPending records the certificate issued for an approved
// enrollment. ErrConflict if it is not approved (another replica won).
func (s *Store) FinishESTPending(ctx context.Context, id, issuerID, serial string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE est_pending SET status = 'issued', cert_issuer_id = ?, cert_serial = ?, updated_at = ? WHERE id = ? AND status = 'approved'`),
		issuerID, serial, s.timeArg(s.now()), id)
	if err != nil {
		return fmt.Errorf("inventory: finish EST pending: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: EST pending enrollment %s is not approved", ErrConflict, id)
	}
	return nil
}
