package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Crash recovery. An issuing request writes in several commits (token
// consumption, reservation, certificate, order outcome); a process killed
// between two of them leaves debris that only this pass finishes:
//
//   - a "requested" certificate older than RecoverOptions.StaleAfter is
//     marked failed (its serial stays claimed, never reused);
//   - a "processing" ACME order whose certificate was committed is linked
//     to it and becomes valid; one whose reservation failed, or that never
//     got one, becomes invalid with a problem document saying why;
//   - a consumed EST token whose enrollment left no certificate and no
//     held request is handed back to the device.
//
// Every step is a compare-and-set on the row's state, so several replicas
// may run the pass at once (the caller still takes the job lock, to keep
// the audit log free of duplicate attempts) and a live request racing the
// pass loses nothing: a request that commits first is respected; one that
// commits after the pass has failed its reservation gets a conflict and
// signs nothing that is kept.

// RecoverOptions tune one recovery pass.
type RecoverOptions struct {
	Now time.Time
	// StaleAfter is the age past which a reservation can no longer be
	// completed by a live request (the CA's MaxIssueDuration and then
	// some): older "requested" rows, and the processing orders waiting on
	// them, are debris.
	StaleAfter time.Duration
	// TokenStaleAfter is the age of a token consumption past which a live
	// request would have reserved its certificate: it covers the request
	// body read as well as the issuance.
	TokenStaleAfter time.Duration
	// Seen remembers, between passes, when a processing order without a
	// reservation was first seen; such an order is debris once it has been
	// seen for StaleAfter. The caller keeps the map; nil disables that
	// step.
	Seen map[string]time.Time
}

// Recovered counts what one pass finished.
type Recovered struct {
	FailedReservations int // requested → failed
	LinkedOrders       int // processing → valid, with the committed certificate
	InvalidOrders      int // processing → invalid
	ReleasedTokens     int // consumed EST tokens made usable again
}

// Total is the number of objects the pass changed.
func (r Recovered) Total() int {
	return r.FailedReservations + r.LinkedOrders + r.InvalidOrders + r.ReleasedTokens
}

// OrderInterrupted is the problem document (RFC 8555 section 7.1.6) of
// an order whose issuance was cut short by a crash.
var OrderInterrupted = json.RawMessage(`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"issuance was interrupted; create a new order","status":500}`)

// recoverBatch caps each step of one pass; the next pass takes the rest.
const recoverBatch = 500

// Recover runs one recovery pass. It stops at the first store error and
// returns what it finished until then. Safe to run concurrently with live
// requests and with other replicas' passes (see above).
func (s *Store) Recover(ctx context.Context, o RecoverOptions) (Recovered, error) {
	var r Recovered
	if o.Now.IsZero() {
		o.Now = s.now()
	}
	if err := s.recoverReservations(ctx, o, &r); err != nil {
		return r, err
	}
	if err := s.recoverOrders(ctx, o, &r); err != nil {
		return r, err
	}
	if err := s.recoverTokens(ctx, o, &r); err != nil {
		return r, err
	}
	return r, nil
}

func recoveryEvent(now time.Time, action, object, outcome string, details map[string]any) Event {
	d, _ := json.Marshal(details)
	return Event{Time: now.UTC(), Actor: "system", Action: action, Protocol: "system", Source: "recovery",
		Object: object, Outcome: outcome, Details: d}
}

func (s *Store) recoverReservations(ctx context.Context, o RecoverOptions, r *Recovered) error {
	var rows []struct {
		IssuerID string `db:"issuer_id"`
		Serial   string `db:"serial"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(fmt.Sprintf(`SELECT issuer_id, serial FROM certificates
		WHERE state = ? AND created_at < ? ORDER BY id LIMIT %d`, recoverBatch)),
		string(StateRequested), s.timeArg(o.Now.Add(-o.StaleAfter))); err != nil {
		return fmt.Errorf("inventory: find stale reservations: %w", err)
	}
	for _, c := range rows {
		ev := recoveryEvent(o.Now, "cert.fail", "cert:"+c.IssuerID+"/"+c.Serial, "error",
			map[string]any{"reason": "issuance was interrupted; the reservation is abandoned and its serial never reused"})
		err := s.FailCertificate(ctx, c.IssuerID, c.Serial, ev)
		if errors.Is(err, ErrConflict) {
			continue // completed or abandoned meanwhile
		}
		if err != nil {
			return err
		}
		r.FailedReservations++
	}
	return nil
}

func (s *Store) recoverOrders(ctx context.Context, o RecoverOptions, r *Recovered) error {
	var rows []struct {
		ID           string `db:"id"`
		CertIssuerID string `db:"cert_issuer_id"`
		CertSerial   string `db:"cert_serial"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(fmt.Sprintf(`SELECT id, cert_issuer_id, cert_serial FROM acme_orders
		WHERE status = ? ORDER BY created_at LIMIT %d`, recoverBatch)), "processing"); err != nil {
		return fmt.Errorf("inventory: find processing orders: %w", err)
	}
	processing := make(map[string]bool, len(rows))
	for _, row := range rows {
		processing[row.ID] = true
		next, reason := "", ""
		if row.CertSerial == "" {
			if o.Seen == nil {
				continue
			}
			first, ok := o.Seen[row.ID]
			if !ok {
				o.Seen[row.ID] = o.Now
				continue
			}
			if o.Now.Sub(first) < o.StaleAfter {
				continue
			}
			next, reason = "invalid", "no certificate was reserved"
		} else {
			c, err := s.Certificate(ctx, row.CertIssuerID, row.CertSerial)
			switch {
			case errors.Is(err, ErrNotFound):
				next, reason = "invalid", "the reserved certificate does not exist"
			case err != nil:
				return err
			case len(c.DER) > 0:
				next = "valid"
			case c.State == StateFailed:
				next, reason = "invalid", "the reserved certificate was not issued"
			default:
				continue // requested and still young: a live request may finish it
			}
		}
		u := ACMEOrderUpdate{Status: next}
		if next == "invalid" {
			u.Error = OrderInterrupted
		}
		err := s.UpdateACMEOrder(ctx, row.ID, []string{"processing"}, u)
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
			continue // the finalize finished it after all
		}
		if err != nil {
			return err
		}
		delete(o.Seen, row.ID)
		details := map[string]any{"status": next}
		if reason != "" {
			details["reason"] = reason
		}
		if row.CertSerial != "" {
			details["certificate"] = row.CertIssuerID + "/" + row.CertSerial
		}
		outcome := "ok"
		if next == "invalid" {
			outcome = "error"
			r.InvalidOrders++
		} else {
			r.LinkedOrders++
		}
		if _, err := s.AppendEvent(ctx, recoveryEvent(o.Now, "acme.order.recover", "acme-order:"+row.ID, outcome, details)); err != nil {
			return err
		}
	}
	for id := range o.Seen {
		if !processing[id] {
			delete(o.Seen, id)
		}
	}
	return nil
}

// tokenLookback bounds which consumed tokens a pass examines: those
// consumed in the last day. Each examined token costs an index lookup and
// a range scan of the certificates made since its consumption, so tokens
// spent long ago are not re-examined every tick; a token burnt by a crash
// is handed back by the first pass after the crash, which is within the
// day unless every replica stayed down that long.
const tokenLookback = 24 * time.Hour

func (s *Store) recoverTokens(ctx context.Context, o RecoverOptions, r *Recovered) error {
	cutoff := s.timeArg(o.Now.Add(-o.TokenStaleAfter))
	var toks []struct {
		ID     string `db:"id"`
		UsedAt dbTime `db:"used_at"`
	}
	if err := s.db.SelectContext(ctx, &toks, s.q(fmt.Sprintf(`SELECT id, used_at FROM est_tokens
		WHERE used_at IS NOT NULL AND used_at < ? AND used_at >= ? AND expires_at > ? ORDER BY id LIMIT %d`, recoverBatch)),
		cutoff, s.timeArg(o.Now.Add(-tokenLookback)), s.timeArg(o.Now)); err != nil {
		return fmt.Errorf("inventory: find consumed EST tokens: %w", err)
	}
	for _, tok := range toks {
		id := tok.ID
		// What the token paid for carries "est-token:{id}" as its
		// requester, alone (an index lookup) or after a manufacturer
		// certificate's name (among the certificates made since the
		// token was consumed: a range of the created_at index).
		req, suffix := "est-token:"+id, "%+est-token:"+escapeLike(id)
		var n int
		if err := s.db.GetContext(ctx, &n, s.q(`SELECT
			(SELECT COUNT(*) FROM certificates WHERE requester = ? AND state <> ?)
			+ (SELECT COUNT(*) FROM certificates WHERE created_at >= ? AND requester LIKE ? ESCAPE '\' AND state <> ?)
			+ (SELECT COUNT(*) FROM est_pending WHERE requester = ? OR requester LIKE ? ESCAPE '\')`),
			req, string(StateFailed), s.timeArg(tok.UsedAt.Time.Add(-time.Second)), suffix, string(StateFailed), req, suffix); err != nil {
			return fmt.Errorf("inventory: what EST token %s paid for: %w", id, err)
		}
		if n > 0 {
			continue
		}
		res, err := s.db.ExecContext(ctx, s.q(`UPDATE est_tokens SET used_at = NULL, used_by = ''
			WHERE id = ? AND used_at IS NOT NULL AND used_at < ?`), id, cutoff)
		if err != nil {
			return fmt.Errorf("inventory: release EST token: %w", err)
		}
		if k, _ := res.RowsAffected(); k != 1 {
			continue
		}
		r.ReleasedTokens++
		if _, err := s.AppendEvent(ctx, recoveryEvent(o.Now, "est.token.release", "est-token:"+id, "ok",
			map[string]any{"reason": "the enrollment the token paid for never committed"})); err != nil {
			return err
		}
	}
	return nil
}
