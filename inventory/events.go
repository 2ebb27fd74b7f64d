package inventory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// eventRow is the scan target for events (times need dbTime on SQLite).
type eventRow struct {
	ID       int64  `db:"id"`
	At       dbTime `db:"at"`
	Actor    string `db:"actor"`
	Action   string `db:"action"`
	Protocol string `db:"protocol"`
	Source   string `db:"source"`
	Object   string `db:"object"`
	Outcome  string `db:"outcome"`
	Details  string `db:"details"`
	PrevHash string `db:"prev_hash"`
	Hash     string `db:"hash"`
}

const eventColumns = `id, at, actor, action, protocol, source, object, outcome, details, prev_hash, hash`

func (r *eventRow) event() Event {
	e := Event{
		ID: r.ID, Time: r.At.Time, Actor: r.Actor, Action: r.Action, Protocol: r.Protocol,
		Source: r.Source, Object: r.Object, Outcome: r.Outcome, PrevHash: r.PrevHash, Hash: r.Hash,
	}
	if r.Details != "" {
		e.Details = json.RawMessage(r.Details)
	}
	return e
}

// canonicalEvent is the hashed encoding of an event. It is JSON of a fixed
// struct: field order is fixed by the struct, strings are escaped by
// encoding/json, so no two distinct events encode alike. V versions the
// encoding; changing any of this breaks verification of existing chains.
type canonicalEvent struct {
	V        int    `json:"v"`
	Time     string `json:"time"` // UTC, RFC 3339 (Nano layout; at most 6 fractional digits after normTime)
	Actor    string `json:"actor"`
	Action   string `json:"action"`
	Protocol string `json:"protocol"`
	Source   string `json:"source"`
	Object   string `json:"object"`
	Outcome  string `json:"outcome"`
	Details  string `json:"details"` // compact JSON text exactly as stored, "" for none
}

// eventHash computes hex(SHA-256(prevHash ‖ canonical JSON)). prevHash is
// empty or 64 hex digits and the JSON starts with '{', so the
// concatenation is unambiguous.
func eventHash(e *Event) string {
	c := canonicalEvent{
		V: 1, Time: normTime(e.Time).Format(time.RFC3339Nano),
		Actor: e.Actor, Action: e.Action, Protocol: e.Protocol, Source: e.Source,
		Object: e.Object, Outcome: e.Outcome, Details: string(e.Details),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the encoding easy to reproduce outside Go
	if err := enc.Encode(c); err != nil {
		panic("inventory: encoding canonical event: " + err.Error()) // strings only; cannot fail
	}
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return hex.EncodeToString(h.Sum(nil))
}

// prepareEvent validates and normalises e in place before it is hashed and
// stored: time defaulted and truncated, text made storable, details
// compacted (stored and hashed byte-identically).
func (s *Store) prepareEvent(e *Event) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.Time = normTime(e.Time)
	for _, f := range []*string{&e.Actor, &e.Action, &e.Protocol, &e.Source, &e.Object, &e.Outcome} {
		*f = cleanText(*f)
	}
	if strings.TrimSpace(e.Action) == "" {
		return fmt.Errorf("%w: event action is required", ErrInvalid)
	}
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	if len(bytes.TrimSpace(e.Details)) == 0 {
		e.Details = nil
	} else {
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Details); err != nil {
			return fmt.Errorf("%w: event details are not valid JSON: %v", ErrInvalid, err)
		}
		if err := checkText("event details", buf.String()); err != nil {
			return err
		}
		e.Details = json.RawMessage(buf.Bytes())
	}
	e.ID, e.PrevHash, e.Hash = 0, "", ""
	return nil
}

// appendEventTx links e to the chain head and inserts it inside tx. The
// head row is locked first (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
// transaction already excludes other writers), so identity values are
// allocated in chain order and no two appends see the same head.
func (s *Store) appendEventTx(ctx context.Context, tx *sqlx.Tx, e *Event) error {
	if err := s.prepareEvent(e); err != nil {
		return err
	}
	var head struct {
		LastID int64  `db:"last_id"`
		Hash   string `db:"hash"`
	}
	if err := tx.GetContext(ctx, &head, `SELECT last_id, hash FROM event_chain_head WHERE id = 1`+s.forUpdate); err != nil {
		return fmt.Errorf("inventory: read audit chain head: %w", err)
	}
	e.PrevHash = head.Hash
	e.Hash = eventHash(e)
	err := tx.QueryRowxContext(ctx, s.q(`INSERT INTO events
		(at, actor, action, protocol, source, object, outcome, details, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		s.timeArg(e.Time), e.Actor, e.Action, e.Protocol, e.Source, e.Object, e.Outcome,
		string(e.Details), e.PrevHash, e.Hash).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("inventory: append event: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE event_chain_head SET last_id = ?, hash = ? WHERE id = 1`), e.ID, e.Hash); err != nil {
		return fmt.Errorf("inventory: advance audit chain head: %w", err)
	}
	return nil
}

// AppendEvent appends e to the audit log in its own transaction and
// returns it as stored: ID, PrevHash and Hash set, Time defaulted to now
// and truncated to microseconds, Outcome defaulted to "ok", Details
// compacted. Action is required. Errors: ErrInvalid (missing action,
// details not JSON); otherwise a database failure, in which case nothing
// was appended.
func (s *Store) AppendEvent(ctx context.Context, e Event) (Event, error) {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error { return s.appendEventTx(ctx, tx, &e) })
	if err != nil {
		return Event{}, err
	}
	return e, nil
}

// Events lists audit events matching f, newest first. Action matches
// exactly, or as a prefix when it ends in "." ("cert." finds cert.issue,
// cert.revoke …). Page with f.Before = the last ID returned. Only database
// failures are returned as errors.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	var w where
	switch {
	case strings.HasSuffix(f.Action, "."):
		w.add(`action LIKE ? ESCAPE '\'`, escapeLike(f.Action)+"%")
	case f.Action != "":
		w.add(`action = ?`, f.Action)
	}
	if f.Actor != "" {
		w.add(`actor = ?`, f.Actor)
	}
	if f.Object != "" {
		// A certificate object may be typed as printed (FormatObject):
		// events store the canonical serial.
		w.add(`object = ?`, ObjectKey(f.Object))
	}
	if !f.Since.IsZero() {
		w.add(`at >= ?`, s.timeArg(f.Since))
	}
	if f.Before > 0 {
		w.add(`id < ?`, f.Before)
	}
	query := `SELECT ` + eventColumns + ` FROM events` + w.sql() + fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, clampLimit(f.Limit))
	var rows []eventRow
	if err := s.db.SelectContext(ctx, &rows, s.q(query), w.args...); err != nil {
		return nil, fmt.Errorf("inventory: list events: %w", err)
	}
	out := make([]Event, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// VerifyEvents recomputes the audit hash chain from the first event to the
// chain head and returns how many events it checked. It returns an error
// wrapping ErrTampered, naming the first bad event id, when an event's
// hash does not match its content, an event does not link to its
// predecessor, or the chain ends before the recorded head (tail removed).
// Events appended while it runs are outside the checked range. Other
// errors are database failures.
func (s *Store) VerifyEvents(ctx context.Context) (int, error) {
	// Read the head first: every event up to head.last_id is committed
	// (the head moves in the inserting transaction), so the walk has a
	// fixed, consistent end even while replicas keep appending.
	var head struct {
		LastID int64  `db:"last_id"`
		Hash   string `db:"hash"`
	}
	if err := s.db.GetContext(ctx, &head, `SELECT last_id, hash FROM event_chain_head WHERE id = 1`); err != nil {
		return 0, fmt.Errorf("inventory: read audit chain head: %w", err)
	}
	n := 0
	prevHash, lastID := "", int64(0)
	for {
		var rows []eventRow
		if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT `+eventColumns+` FROM events
			WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`), lastID, head.LastID, s.verifyBatch); err != nil {
			return n, fmt.Errorf("inventory: read events: %w", err)
		}
		for i := range rows {
			e := rows[i].event()
			if e.PrevHash != prevHash {
				return n, fmt.Errorf("%w: event %d does not link to its predecessor (an event before it was removed or altered)", ErrTampered, e.ID)
			}
			if got := eventHash(&e); got != e.Hash {
				return n, fmt.Errorf("%w: event %d content does not match its hash", ErrTampered, e.ID)
			}
			prevHash, lastID = e.Hash, e.ID
			n++
		}
		if len(rows) < s.verifyBatch {
			break
		}
	}
	if lastID != head.LastID || prevHash != head.Hash {
		return n, fmt.Errorf("%w: chain ends at event %d but the head records event %d (events removed from the end)", ErrTampered, lastID, head.LastID)
	}
	return n, nil
}
