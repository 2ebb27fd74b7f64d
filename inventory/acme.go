package inventory

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// ACME account statuses (RFC 8555 section 7.1.2).
const (
	ACMEAccountValid       = "valid"
	ACMEAccountDeactivated = "deactivated"
	ACMEAccountRevoked     = "revoked"
)

// ACMEAccount is one ACME account. The store keeps the key as the client
// sent it (JWK JSON) and its RFC 7638 thumbprint, which is unique: one key,
// one account.
type ACMEAccount struct {
	ID         string
	Thumbprint string
	JWK        string
	Status     string
	Contact    []string
	EABKeyID   string // external account binding key that created it, if any
	Profile    string // ACME directory it was created in
	Source     string // remote IP at creation
	CreatedAt  time.Time
}

// ACMEAccountFilter selects accounts; empty fields match anything, but at
// least one must be set.
type ACMEAccountFilter struct {
	ID         string
	Thumbprint string
	Source     string    // with Since: accounts created from one IP (rate limits)
	Since      time.Time // created at or after
}

// ACMEEABKey is an external account binding key. Sealed is the HMAC key
// encrypted by the acme package; the store never sees it in clear.
type ACMEEABKey struct {
	KeyID     string
	Profile   string
	Sealed    []byte
	AccountID string // empty until an account is bound with it
	CreatedBy string
	CreatedAt time.Time
	UsedAt    *time.Time
}

type acmeAccountRow struct {
	ID         string `db:"id"`
	Thumbprint string `db:"thumbprint"`
	JWK        string `db:"jwk"`
	Status     string `db:"status"`
	Contact    string `db:"contact"`
	EABKeyID   string `db:"eab_kid"`
	Profile    string `db:"profile"`
	Source     string `db:"source"`
	CreatedAt  dbTime `db:"created_at"`
}

const acmeAccountColumns = `id, thumbprint, jwk, status, contact, eab_kid, profile, source, created_at`

func (r *acmeAccountRow) account() (*ACMEAccount, error) {
	a := &ACMEAccount{ID: r.ID, Thumbprint: r.Thumbprint, JWK: r.JWK, Status: r.Status, EABKeyID: r.EABKeyID,
		Profile: r.Profile, Source: r.Source, CreatedAt: r.CreatedAt.Time}
	if err := json.Unmarshal([]byte(r.Contact), &a.Contact); err != nil {
		return nil, fmt.Errorf("inventory: account %s contact: %w", r.ID, err)
	}
	return a, nil
}

func checkACMEAccount(a *ACMEAccount) error {
	if a.ID == "" || a.Thumbprint == "" || a.JWK == "" {
		return fmt.Errorf("%w: ACME account needs an id, a key and its thumbprint", ErrInvalid)
	}
	switch a.Status {
	case ACMEAccountValid, ACMEAccountDeactivated, ACMEAccountRevoked:
	default:
		return fmt.Errorf("%w: ACME account status %q", ErrInvalid, truncateForError(a.Status))
	}
	for _, c := range append([]string{a.JWK, a.Source}, a.Contact...) {
		if err := checkText("ACME account field", c); err != nil {
			return err
		}
	}
	return nil
}

// CreateACMEAccount stores a new account and appends ev in the same
// transaction. When EABKeyID is set the EAB key is marked used by this
// account in that transaction too, so one key binds exactly one account
// even when two replicas race. CreatedAt defaults to now.
//
// Errors: ErrDuplicate if the key (thumbprint) or ID already has an
// account, ErrConflict if the EAB key is unknown or already used,
// ErrInvalid for bad fields.
func (s *Store) CreateACMEAccount(ctx context.Context, a *ACMEAccount, ev Event) error {
	if err := checkACMEAccount(a); err != nil {
		return err
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	a.CreatedAt = normTime(a.CreatedAt)
	contact, _ := json.Marshal(nonNil(a.Contact))
	defaultEvent(&ev, "acme.account.create", "acme-account:"+a.ID)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO acme_accounts (`+acmeAccountColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			a.ID, a.Thumbprint, a.JWK, a.Status, string(contact), a.EABKeyID, a.Profile, a.Source, s.timeArg(a.CreatedAt)); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("%w: an ACME account with this key exists", ErrDuplicate)
			}
			return fmt.Errorf("inventory: create ACME account: %w", err)
		}
		if a.EABKeyID != "" {
			res, err := tx.ExecContext(ctx, s.q(`UPDATE acme_eab_keys SET account_id = ?, used_at = ? WHERE kid = ? AND account_id = ''`),
				a.ID, s.timeArg(a.CreatedAt), a.EABKeyID)
			if err != nil {
				return fmt.Errorf("inventory: bind EAB key: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("%w: EAB key %s is unknown or already bound", ErrConflict, truncateForError(a.EABKeyID))
			}
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// ACMEAccount returns the one account matching f (ID or Thumbprint).
//
// Errors: ErrNotFound, ErrInvalid when f selects nothing specific.
func (s *Store) ACMEAccount(ctx context.Context, f ACMEAccountFilter) (*ACMEAccount, error) {
	var w where
	if f.ID != "" {
		w.add(`id = ?`, f.ID)
	}
	if f.Thumbprint != "" {
		w.add(`thumbprint = ?`, f.Thumbprint)
	}
	if len(w.conds) == 0 {
		return nil, fmt.Errorf("%w: ACME account lookup needs an ID or thumbprint", ErrInvalid)
	}
	var r acmeAccountRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+acmeAccountColumns+` FROM acme_accounts`+w.sql()), w.args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: ACME account", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read ACME account: %w", err)
	}
	return r.account()
}

// CountACMEAccounts counts accounts created from f.Source since f.Since,
// the per-IP account creation limit.
func (s *Store) CountACMEAccounts(ctx context.Context, f ACMEAccountFilter) (int, error) {
	var w where
	if f.Source != "" {
		w.add(`source = ?`, f.Source)
	}
	if !f.Since.IsZero() {
		w.add(`created_at >= ?`, s.timeArg(f.Since))
	}
	var n int
	if err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM acme_accounts`+w.sql()), w.args...); err != nil {
		return 0, fmt.Errorf("inventory: count ACME accounts: %w", err)
	}
	return n, nil
}

// UpdateACMEAccount writes a's status, contact and key (JWK and
// thumbprint, for key rollover) and appends ev in the same transaction.
// A deactivated or revoked account is final: updating one is ErrConflict.
//
// Errors: ErrNotFound, ErrDuplicate if the new key belongs to another
// account, ErrConflict, ErrInvalid.
func (s *Store) UpdateACMEAccount(ctx context.Context, a *ACMEAccount, ev Event) error {
	if err := checkACMEAccount(a); err != nil {
		return err
	}
	contact, _ := json.Marshal(nonNil(a.Contact))
	defaultEvent(&ev, "acme.account.update", "acme-account:"+a.ID)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE acme_accounts SET status = ?, contact = ?, jwk = ?, thumbprint = ? WHERE id = ? AND status = 'valid'`),
			a.Status, string(contact), a.JWK, a.Thumbprint, a.ID)
		if err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("%w: another ACME account has this key", ErrDuplicate)
			}
			return fmt.Errorf("inventory: update ACME account: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			var st string
			if err := tx.GetContext(ctx, &st, s.q(`SELECT status FROM acme_accounts WHERE id = ?`), a.ID); errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: ACME account", ErrNotFound)
			}
			return fmt.Errorf("%w: ACME account is %s", ErrConflict, st)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// ACMENonceKey returns the MAC key the ACME replicas share for nonces.
// The first caller stores candidate; every caller, concurrent ones
// included, gets the key that was stored first, so replicas started
// together agree. Errors: ErrInvalid for an empty candidate.
func (s *Store) ACMENonceKey(ctx context.Context, candidate []byte) ([]byte, error) {
	if len(candidate) == 0 {
		return nil, fmt.Errorf("%w: empty nonce key", ErrInvalid)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO acme_nonce_key (id, key, created_at) VALUES (1, ?, ?)
		ON CONFLICT (id) DO NOTHING`), candidate, s.timeArg(s.now())); err != nil {
		return nil, fmt.Errorf("inventory: store nonce key: %w", err)
	}
	var key []byte
	if err := s.db.GetContext(ctx, &key, s.q(`SELECT key FROM acme_nonce_key WHERE id = 1`)); err != nil {
		return nil, fmt.Errorf("inventory: read nonce key: %w", err)
	}
	return key, nil
}

// UseACMENonce redeems nonce id: it reports true for the first call with
// id, on any replica, and false for every later one until the row is
// purged (after expires, when the nonce's own expiry refuses it). The
// INSERT on the primary key is the whole check, so two concurrent
// redemptions cannot both succeed.
//
// The commit does not wait for the disk (synchronous=NORMAL on SQLite,
// synchronous_commit=off on PostgreSQL); it is visible to every replica at
// once, and it becomes durable no later than the next durable commit,
// because both databases write one log in order and a durable commit
// flushes it up to itself. So anything a request that redeemed the nonce
// made durable also made the redemption durable; a crash can only lose a
// redemption together with every effect of its request (docs/architecture.md,
// "Nonces").
func (s *Store) UseACMENonce(ctx context.Context, id string, expires time.Time) (bool, error) {
	query := s.q(`INSERT INTO acme_used_nonces (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`)
	var n int64
	var err error
	if s.dialect == DialectPostgres {
		err = s.inTx(ctx, func(tx *sqlx.Tx) error {
			if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, query, id, s.timeArg(expires))
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
	} else {
		n, err = s.lazySQLiteExec(ctx, query, id, s.timeArg(expires))
	}
	if err != nil {
		return false, fmt.Errorf("inventory: use nonce: %w", err)
	}
	return n == 1, nil
}

// lazySQLiteExec runs one statement on a pooled connection switched to
// synchronous=NORMAL for it (the commit is written to the WAL but not
// synced), and switches the connection back before the pool sees it
// again; a connection that cannot be switched back is discarded. It
// returns the rows affected.
func (s *Store) lazySQLiteExec(ctx context.Context, query string, args ...any) (int64, error) {
	// Queue with the other in-process writers (see writeGate) rather than
	// poll SQLite's busy handler against them.
	if s.writeGate != nil {
		select {
		case s.writeGate <- struct{}{}:
			defer func() { <-s.writeGate }()
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return 0, err
	}
	defer func() {
		if _, err := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); err != nil {
			// Never hand the pool a connection that commits lazily.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	res, err := conn.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// PurgeACMEUsedNonces deletes used-nonce rows that expired before now and
// reports how many went. Any replica may run it at any time.
func (s *Store) PurgeACMEUsedNonces(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM acme_used_nonces WHERE expires_at <= ?`), s.timeArg(now))
	if err != nil {
		return 0, fmt.Errorf("inventory: purge nonces: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// CreateACMEEABKey stores a new EAB key and appends ev (default action
// "acme.eab.create") in the same transaction.
//
// Errors: ErrDuplicate if the key ID exists, ErrInvalid.
func (s *Store) CreateACMEEABKey(ctx context.Context, k *ACMEEABKey, ev Event) error {
	if k.KeyID == "" || k.Profile == "" || len(k.Sealed) == 0 {
		return fmt.Errorf("%w: EAB key needs a key ID, a profile and the sealed key", ErrInvalid)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	k.CreatedAt = normTime(k.CreatedAt)
	defaultEvent(&ev, "acme.eab.create", "acme-eab:"+k.KeyID)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO acme_eab_keys (kid, profile, sealed_key, created_by, created_at) VALUES (?, ?, ?, ?, ?)`),
			k.KeyID, k.Profile, k.Sealed, k.CreatedBy, s.timeArg(k.CreatedAt)); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("%w: EAB key %s exists", ErrDuplicate, k.KeyID)
			}
			return fmt.Errorf("inventory: create EAB key: %w", err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// ACMEEABKey returns one EAB key by ID. Errors: ErrNotFound.
func (s *Store) ACMEEABKey(ctx context.Context, kid string) (*ACMEEABKey, error) {
	var r struct {
		KeyID     string `db:"kid"`
		Profile   string `db:"profile"`
		Sealed    []byte `db:"sealed_key"`
		AccountID string `db:"account_id"`
		CreatedBy string `db:"created_by"`
		CreatedAt dbTime `db:"created_at"`
		UsedAt    dbTime `db:"used_at"`
	}
	err := s.db.GetContext(ctx, &r, s.q(`SELECT kid, profile, sealed_key, account_id, created_by, created_at, used_at FROM acme_eab_keys WHERE kid = ?`), kid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: EAB key", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read EAB key: %w", err)
	}
	return &ACMEEABKey{KeyID: r.KeyID, Profile: r.Profile, Sealed: r.Sealed, AccountID: r.AccountID,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.Time, UsedAt: r.UsedAt.ptr()}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
