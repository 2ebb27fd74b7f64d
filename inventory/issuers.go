package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jmoiron/sqlx"
)

// issuerIDPattern keeps issuer ids safe to use verbatim in URL paths
// (/crl/{id}.crl, /ca/{id}.crt) and file names.
var issuerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

type issuerRow struct {
	ID        string `db:"id"`
	ParentID  string `db:"parent_id"`
	IsRoot    bool   `db:"is_root"`
	Subject   string `db:"subject"`
	KeyURI    string `db:"key_uri"`
	KeyType   string `db:"key_type"`
	SKI       string `db:"ski"`
	NotBefore dbTime `db:"not_before"`
	NotAfter  dbTime `db:"not_after"`
	Status    string `db:"status"`
	DER       []byte `db:"der"`
	CreatedAt dbTime `db:"created_at"`
}

const issuerColumns = `id, parent_id, is_root, subject, key_uri, key_type, ski, not_before, not_after, status, der, created_at`

func (r *issuerRow) issuer() Issuer {
	return Issuer{
		ID: r.ID, ParentID: r.ParentID, IsRoot: r.IsRoot, Subject: r.Subject, KeyURI: r.KeyURI,
		KeyType: r.KeyType, SKI: r.SKI, NotBefore: r.NotBefore.Time, NotAfter: r.NotAfter.Time,
		Status: r.Status, DER: r.DER, CreatedAt: r.CreatedAt.Time,
	}
}

// PutIssuer records a new issuer (root or issuing CA) and appends ev in
// the same transaction. The ID must be 1–64 characters of [A-Za-z0-9._-]
// starting with a letter or digit, and DER must be present. Status
// defaults to "active", CreatedAt to now; times are truncated to
// microseconds and SKI is normalised to lower-case hex, all written back
// into iss. ev defaults: Action "issuer.create", Object "issuer:{id}".
//
// Errors: ErrDuplicate if the ID exists, ErrInvalid for bad fields.
func (s *Store) PutIssuer(ctx context.Context, iss *Issuer, ev Event) error {
	if iss == nil {
		return fmt.Errorf("%w: nil issuer", ErrInvalid)
	}
	v := *iss
	if !issuerIDPattern.MatchString(v.ID) {
		return fmt.Errorf("%w: issuer id %q must be 1-64 characters of [A-Za-z0-9._-]", ErrInvalid, truncateForError(v.ID))
	}
	if len(v.DER) == 0 {
		return fmt.Errorf("%w: issuer %s has no certificate DER", ErrInvalid, v.ID)
	}
	for field, val := range map[string]string{"parent_id": v.ParentID, "subject": v.Subject, "key_uri": v.KeyURI, "key_type": v.KeyType, "status": v.Status} {
		if err := checkText("issuer "+field, val); err != nil {
			return err
		}
	}
	var err error
	if v.SKI, err = normalizeHexField("issuer SKI", v.SKI); err != nil {
		return err
	}
	if v.Status == "" {
		v.Status = "active"
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = s.now()
	}
	v.CreatedAt, v.NotBefore, v.NotAfter = normTime(v.CreatedAt), normTime(v.NotBefore), normTime(v.NotAfter)
	defaultEvent(&ev, "issuer.create", "issuer:"+v.ID)

	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO issuers (`+issuerColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			v.ID, v.ParentID, v.IsRoot, v.Subject, v.KeyURI, v.KeyType, v.SKI,
			s.timeArg(v.NotBefore), s.timeArg(v.NotAfter), v.Status, v.DER, s.timeArg(v.CreatedAt))
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: issuer %s already exists", ErrDuplicate, v.ID)
		}
		if err != nil {
			return fmt.Errorf("inventory: insert issuer %s: %w", v.ID, err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
	if err != nil {
		return err
	}
	*iss = v
	return nil
}

// UpdateIssuerStatus sets an issuer's status (e.g. "active", "retired")
// and appends ev in the same transaction. ev defaults: Action
// "issuer.status", Object "issuer:{id}", Details {"status": status}.
//
// Errors: ErrNotFound if no such issuer, ErrInvalid if status is empty.
func (s *Store) UpdateIssuerStatus(ctx context.Context, id, status string, ev Event) error {
	if status == "" {
		return fmt.Errorf("%w: empty issuer status", ErrInvalid)
	}
	if err := checkText("issuer status", status); err != nil {
		return err
	}
	defaultEvent(&ev, "issuer.status", "issuer:"+id)
	if len(ev.Details) == 0 {
		ev.Details, _ = json.Marshal(map[string]string{"status": status})
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE issuers SET status = ? WHERE id = ?`), status, id)
		if err != nil {
			return fmt.Errorf("inventory: update issuer %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("inventory: update issuer %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("%w: issuer %s", ErrNotFound, id)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// Issuer returns one issuer. Errors: ErrNotFound.
func (s *Store) Issuer(ctx context.Context, id string) (*Issuer, error) {
	var r issuerRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+issuerColumns+` FROM issuers WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: issuer %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read issuer %s: %w", id, err)
	}
	iss := r.issuer()
	return &iss, nil
}

// Issuers returns every issuer, oldest first (roots normally precede the
// issuing CAs they signed). Only database failures are errors.
func (s *Store) Issuers(ctx context.Context) ([]Issuer, error) {
	var rows []issuerRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+issuerColumns+` FROM issuers ORDER BY created_at, id`); err != nil {
		return nil, fmt.Errorf("inventory: list issuers: %w", err)
	}
	out := make([]Issuer, len(rows))
	for i := range rows {
		out[i] = rows[i].issuer()
	}
	return out, nil
}

// defaultEvent fills the fields a state-changing method knows better than
// its caller when the caller left them empty.
func defaultEvent(ev *Event, action, object string) {
	if ev.Action == "" {
		ev.Action = action
	}
	if ev.Object == "" {
		ev.Object = object
	}
}

// OCSPCoverage is what the compliance report needs about an issuer's
// pre-signed OCSP responses: the oldest thisUpdate among the responses of
// its unexpired certificates, how many of those responses there are, and
// how many unexpired certificates have none.
type OCSPCoverage struct {
	IssuerID  string
	Oldest    time.Time // zero when there is no response
	Responses int
	Missing   int
}

// OCSPCoverage reports on the pre-signed OCSP responses of issuerID's
// certificates that have not expired at now (responses of expired
// certificates are no longer served and do not count).
func (s *Store) OCSPCoverage(ctx context.Context, issuerID string, now time.Time) (OCSPCoverage, error) {
	out := OCSPCoverage{IssuerID: issuerID}
	var row struct {
		Oldest    dbTime `db:"oldest"`
		Responses int    `db:"responses"`
		Missing   int    `db:"missing"`
	}
	err := s.db.GetContext(ctx, &row, s.q(`SELECT MIN(r.this_update) AS oldest, COUNT(r.serial) AS responses,
		COALESCE(SUM(CASE WHEN r.serial IS NULL THEN 1 ELSE 0 END), 0) AS missing
		FROM certificates c LEFT JOIN ocsp_responses r ON r.issuer_id = c.issuer_id AND r.serial = c.serial
		WHERE c.issuer_id = ? AND c.state IN (?, ?, ?) AND c.not_after > ?`),
		issuerID, string(StateIssued), string(StateSuperseded), string(StateRevoked), s.timeArg(now))
	if err != nil {
		return out, fmt.Errorf("inventory: OCSP freshness of %s: %w", issuerID, err)
	}
	out.Oldest, out.Responses, out.Missing = row.Oldest.Time, row.Responses, row.Missing
	return out, nil
}

// LastEventByObject returns, per object, the time of the newest event
// with this action and outcome: e.g. every user's last successful login
// ("ui.login", "ok", keyed "user:{name}").
func (s *Store) LastEventByObject(ctx context.Context, action, outcome string) (map[string]time.Time, error) {
	var rows []struct {
		Object string `db:"object"`
		At     dbTime `db:"at"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT object, MAX(at) AS at FROM events WHERE action = ? AND outcome = ? GROUP BY object`), action, outcome); err != nil {
		return nil, fmt.Errorf("inventory: last %s events: %w", action, err)
	}
	out := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		out[r.Object] = r.At.Time
	}
	return out, nil
}
