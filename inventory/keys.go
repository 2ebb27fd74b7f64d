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

// Key statuses, after the states of NIST SP 800-57 Part 1 §7: a key is
// generated (pre-activation), used (active), kept only to verify what it
// signed (retired: the signing path refuses it) and finally destroyed (the
// private key object is gone; the public key stays here).
const (
	KeyPreActivation = "pre-activation"
	KeyActive        = "active"
	KeyRetired       = "retired"
	KeyDestroyed     = "destroyed"
)

// How a key's usage columns are filled (Key.Metering).
const (
	MeteringSigner = "signer" // counted by the signing path (ca.MeteredKeys)
	MeteringSite   = "site"   // counted where the key is used
	MeteringNone   = "none"   // not metered: the usage columns stay empty
)

// Key is one row of the key inventory.
type Key struct {
	ID           string          `json:"id"`
	Class        string          `json:"class"`   // root, issuing, ocsp-responder, pool-seal, eab-hmac, …
	Backend      string          `json:"backend"` // pkcs11, softkms, offline
	URI          string          `json:"uri,omitempty"`
	Algorithm    string          `json:"algorithm"`
	IssuerID     string          `json:"issuer_id,omitempty"`
	PublicKey    []byte          `json:"public_key,omitempty"` // DER SPKI
	SPKISHA256   string          `json:"spki_sha256,omitempty"`
	Protection   json.RawMessage `json:"protection,omitempty"`
	Status       string          `json:"status"`
	Cryptoperiod time.Duration   `json:"cryptoperiod"`
	Created      time.Time       `json:"created"`
	ActivateAt   time.Time       `json:"activate_at"`
	RotationDue  *time.Time      `json:"rotation_due,omitempty"`
	RetiredAt    *time.Time      `json:"retired_at,omitempty"`
	DestroyedAt  *time.Time      `json:"destroyed_at,omitempty"`
	FirstUsed    *time.Time      `json:"first_used,omitempty"`
	LastUsed     *time.Time      `json:"last_used,omitempty"`
	Signatures   int64           `json:"signatures"`
	Metering     string          `json:"metering"` // MeteringSigner (default), MeteringSite, MeteringNone
}

// KeyUsage is a batch of signatures made with the key at URI, counted in
// memory by the signing path and flushed as one increment.
type KeyUsage struct {
	URI         string
	Signatures  int64
	First, Last time.Time
}

type keyRow struct {
	ID           string `db:"id"`
	Class        string `db:"class"`
	Backend      string `db:"backend"`
	URI          string `db:"uri"`
	Algorithm    string `db:"algorithm"`
	IssuerID     string `db:"issuer_id"`
	PublicKey    []byte `db:"public_key"`
	SPKISHA256   string `db:"spki_sha256"`
	Protection   string `db:"protection"`
	Status       string `db:"status"`
	Cryptoperiod int64  `db:"cryptoperiod_seconds"`
	Created      dbTime `db:"created_at"`
	ActivateAt   dbTime `db:"activate_at"`
	RotationDue  dbTime `db:"rotation_due_at"`
	RetiredAt    dbTime `db:"retired_at"`
	DestroyedAt  dbTime `db:"destroyed_at"`
	FirstUsed    dbTime `db:"first_used_at"`
	LastUsed     dbTime `db:"last_used_at"`
	Signatures   int64  `db:"signatures"`
	Metering     string `db:"metering"`
}

const keyColumns = `id, class, backend, uri, algorithm, issuer_id, public_key, spki_sha256, protection, status,
	cryptoperiod_seconds, created_at, activate_at, rotation_due_at, retired_at, destroyed_at, first_used_at, last_used_at, signatures, metering`

func (r *keyRow) key() Key {
	k := Key{
		ID: r.ID, Class: r.Class, Backend: r.Backend, URI: r.URI, Algorithm: r.Algorithm, IssuerID: r.IssuerID,
		PublicKey: r.PublicKey, SPKISHA256: r.SPKISHA256, Status: r.Status,
		Cryptoperiod: time.Duration(r.Cryptoperiod) * time.Second,
		Created:      r.Created.Time, ActivateAt: r.ActivateAt.Time,
		RotationDue: r.RotationDue.ptr(), RetiredAt: r.RetiredAt.ptr(), DestroyedAt: r.DestroyedAt.ptr(),
		FirstUsed: r.FirstUsed.ptr(), LastUsed: r.LastUsed.ptr(), Signatures: r.Signatures, Metering: r.Metering,
	}
	if r.Protection != "" && r.Protection != "{}" {
		k.Protection = json.RawMessage(r.Protection)
	}
	return k
}

// PutKey records a key and appends ev in the same transaction. Status
// defaults to active, Created and ActivateAt to now; RotationDue defaults
// to ActivateAt + Cryptoperiod when a cryptoperiod is set. ev defaults:
// Action "key.register", Object "key:{id}".
//
// Errors: ErrDuplicate if the ID exists (registration is idempotent for
// callers that ignore it), ErrInvalid for bad fields.
func (s *Store) PutKey(ctx context.Context, k *Key, ev Event) error {
	if k == nil {
		return fmt.Errorf("%w: nil key", ErrInvalid)
	}
	v := *k
	if !issuerIDPattern.MatchString(v.ID) {
		return fmt.Errorf("%w: key id %q must be 1-64 characters of [A-Za-z0-9._-]", ErrInvalid, truncateForError(v.ID))
	}
	if v.Class == "" || v.Backend == "" || v.Algorithm == "" {
		return fmt.Errorf("%w: key %s needs a class, backend and algorithm", ErrInvalid, v.ID)
	}
	for field, val := range map[string]string{"class": v.Class, "backend": v.Backend, "uri": v.URI, "algorithm": v.Algorithm, "issuer_id": v.IssuerID, "status": v.Status} {
		if err := checkText("key "+field, val); err != nil {
			return err
		}
	}
	if v.Status == "" {
		v.Status = KeyActive
	}
	switch v.Metering {
	case "":
		v.Metering = MeteringSigner
	case MeteringSigner, MeteringSite, MeteringNone:
	default:
		return fmt.Errorf("%w: key %s metering %q", ErrInvalid, v.ID, truncateForError(v.Metering))
	}
	if v.Signatures < 0 {
		return fmt.Errorf("%w: key %s has a negative use count", ErrInvalid, v.ID)
	}
	if v.Created.IsZero() {
		v.Created = s.now()
	}
	if v.ActivateAt.IsZero() {
		v.ActivateAt = v.Created
	}
	v.Created, v.ActivateAt = normTime(v.Created), normTime(v.ActivateAt)
	if v.RotationDue == nil && v.Cryptoperiod > 0 {
		due := v.ActivateAt.Add(v.Cryptoperiod)
		v.RotationDue = &due
	}
	prot := "{}"
	if len(v.Protection) > 0 {
		if !json.Valid(v.Protection) {
			return fmt.Errorf("%w: key %s protection is not JSON", ErrInvalid, v.ID)
		}
		prot = string(v.Protection)
	}
	defaultEvent(&ev, "key.register", "key:"+v.ID)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO keys (id, class, backend, uri, algorithm, issuer_id, public_key, spki_sha256,
			protection, status, cryptoperiod_seconds, created_at, activate_at, rotation_due_at, signatures, first_used_at, last_used_at, metering)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			v.ID, v.Class, v.Backend, v.URI, v.Algorithm, v.IssuerID, v.PublicKey, v.SPKISHA256, prot, v.Status,
			int64(v.Cryptoperiod/time.Second), s.timeArg(v.Created), s.timeArg(v.ActivateAt), s.nullTimeArg(v.RotationDue),
			v.Signatures, s.nullTimeArg(v.FirstUsed), s.nullTimeArg(v.LastUsed), v.Metering)
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: key %s already exists", ErrDuplicate, v.ID)
		}
		if err != nil {
			return fmt.Errorf("inventory: insert key %s: %w", v.ID, err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// Key returns one key. Errors: ErrNotFound.
func (s *Store) Key(ctx context.Context, id string) (*Key, error) {
	var r keyRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+keyColumns+` FROM keys WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: key %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read key %s: %w", id, err)
	}
	k := r.key()
	return &k, nil
}

// Keys returns every key, oldest first. The inventory holds tens of keys,
// not millions, so there is no paging.
func (s *Store) Keys(ctx context.Context) ([]Key, error) {
	var rows []keyRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+keyColumns+` FROM keys ORDER BY created_at, id`); err != nil {
		return nil, fmt.Errorf("inventory: list keys: %w", err)
	}
	out := make([]Key, len(rows))
	for i := range rows {
		out[i] = rows[i].key()
	}
	return out, nil
}

// AddKeyUsage adds counted signatures to the keys with those URIs and
// widens their first/last-used range. Increments, not overwrites: every
// replica flushes its own counts into the same rows. Usage of a URI with
// no key row is dropped (a key the inventory does not know yet is
// registered with a zero count); only database failures are errors.
func (s *Store) AddKeyUsage(ctx context.Context, us []KeyUsage) error {
	if len(us) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		for _, u := range us {
			if u.Signatures <= 0 {
				continue
			}
			if err := s.addKeyUsageTx(ctx, tx, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// addKeyUsageTx adds u's signatures to its key's lifetime counter and
// widens its first/last-used range, as an increment (replicas add up).
func (s *Store) addKeyUsageTx(ctx context.Context, tx *sqlx.Tx, u KeyUsage) error {
	first, last := s.timeArg(u.First), s.timeArg(u.Last)
	_, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET signatures = signatures + ?,
		first_used_at = CASE WHEN first_used_at IS NULL OR first_used_at > ? THEN ? ELSE first_used_at END,
		last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END
		WHERE uri = ? AND uri <> ''`), u.Signatures, first, first, last, last, u.URI)
	if err != nil {
		return fmt.Errorf("inventory: add key usage: %w", err)
	}
	return nil
}

// SetKeyStatus moves a key to status (retired, destroyed, …), stamping
// retired_at / destroyed_at, and appends ev in the same transaction. A
// destroyed key stays destroyed: any change away from it is ErrConflict.
// ev defaults: Action "key.status", Object "key:{id}", Details {"status"}.
//
// Errors: ErrNotFound, ErrInvalid (unknown status), ErrConflict.
func (s *Store) SetKeyStatus(ctx context.Context, id, status string, ev Event) error {
	switch status {
	case KeyPreActivation, KeyActive, KeyRetired, KeyDestroyed:
	default:
		return fmt.Errorf("%w: key status %q", ErrInvalid, status)
	}
	defaultEvent(&ev, "key.status", "key:"+id)
	if len(ev.Details) == 0 {
		ev.Details, _ = json.Marshal(map[string]string{"status": status})
	}
	now := s.timeArg(s.now())
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var cur string
		err := tx.GetContext(ctx, &cur, s.q(`SELECT status FROM keys WHERE id = ?`), id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: key %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("inventory: read key %s: %w", id, err)
		}
		if cur == KeyDestroyed && status != KeyDestroyed {
			return fmt.Errorf("%w: key %s is destroyed", ErrConflict, id)
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE keys SET status = ?,
			retired_at = CASE WHEN CAST(? AS TEXT) = 'retired' AND retired_at IS NULL THEN ? ELSE retired_at END,
			destroyed_at = CASE WHEN CAST(? AS TEXT) = 'destroyed' AND destroyed_at IS NULL THEN ? ELSE destroyed_at END
			WHERE id = ?`), status, status, now, status, now, id)
		if err != nil {
			return fmt.Errorf("inventory: update key %s: %w", id, err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// SetKeyCryptoperiod sets a key's cryptoperiod and, from it, its
// rotation due date (activation + period; none for 0), writing ev in the
// same transaction. A policy change in mica.yaml reaches keys registered
// under the old policy through it. Errors: ErrNotFound, ErrInvalid for a
// negative period. Safe for concurrent use: the last writer wins, and
// every writer computes the same value from the same policy.
func (s *Store) SetKeyCryptoperiod(ctx context.Context, id string, period time.Duration, ev Event) error {
	if period < 0 {
		return fmt.Errorf("%w: key %s: negative cryptoperiod", ErrInvalid, id)
	}
	defaultEvent(&ev, "key.policy", "key:"+id)
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r keyRow
		err := tx.GetContext(ctx, &r, s.q(`SELECT `+keyColumns+` FROM keys WHERE id = ?`), id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: key %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("inventory: read key %s: %w", id, err)
		}
		k := r.key()
		var due *time.Time
		if period > 0 {
			d := normTime(k.ActivateAt.Add(period))
			due = &d
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET cryptoperiod_seconds = ?, rotation_due_at = ? WHERE id = ?`),
			int64(period/time.Second), s.nullTimeArg(due), id); err != nil {
			return fmt.Errorf("inventory: update key %s: %w", id, err)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// IssuerDuty reports how long an issuer still owes relying parties CRLs
// and OCSP: the latest not_after of any certificate it signed (revoked ones
// included: their revocation must stay visible until they expire), or the
// zero time when it signed none.
func (s *Store) IssuerDuty(ctx context.Context, issuerID string) (time.Time, error) {
	var t dbTime
	err := s.db.GetContext(ctx, &t, s.q(`SELECT MAX(not_after) FROM certificates WHERE issuer_id = ?`), issuerID)
	if err != nil {
		return time.Time{}, fmt.Errorf("inventory: certificate expiry of issuer %s: %w", issuerID, err)
	}
	return t.Time, nil
}

// SetKeyUsage overwrites the usage of a key whose uses are counted where
// it lives (MeteringSite, e.g. an EAB key's one binding): count, first and
// last use, as that place reports them. Unlike AddKeyUsage it is
// absolute, so repeating it is harmless. Errors: ErrNotFound.
func (s *Store) SetKeyUsage(ctx context.Context, id string, count int64, first, last *time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE keys SET signatures = ?, first_used_at = ?, last_used_at = ? WHERE id = ?`),
		count, s.nullTimeArg(first), s.nullTimeArg(last), id)
	if err != nil {
		return fmt.Errorf("inventory: set usage of key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: key %s", ErrNotFound, id)
	}
	return nil
}

// EABKeyInfo describes an ACME EAB key for the key inventory, without the
// sealed HMAC key itself.
type EABKeyInfo struct {
	KeyID     string     `db:"kid"`
	Profile   string     `db:"profile"`
	AccountID string     `db:"account_id"`
	CreatedAt time.Time  `db:"-"`
	UsedAt    *time.Time `db:"-"`
}

// EABKeyInfos lists every ACME EAB key, oldest first.
func (s *Store) EABKeyInfos(ctx context.Context) ([]EABKeyInfo, error) {
	var rows []struct {
		KeyID     string `db:"kid"`
		Profile   string `db:"profile"`
		AccountID string `db:"account_id"`
		CreatedAt dbTime `db:"created_at"`
		UsedAt    dbTime `db:"used_at"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT kid, profile, account_id, created_at, used_at FROM acme_eab_keys ORDER BY created_at, kid`); err != nil {
		return nil, fmt.Errorf("inventory: list EAB keys: %w", err)
	}
	out := make([]EABKeyInfo, len(rows))
	for i, r := range rows {
		out[i] = EABKeyInfo{KeyID: r.KeyID, Profile: r.Profile, AccountID: r.AccountID, CreatedAt: r.CreatedAt.Time, UsedAt: r.UsedAt.ptr()}
	}
	return out, nil
}
