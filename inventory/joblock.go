package inventory

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"time"
)

// JobLeaseTTL is how long a SQLite job lease lasts when its holder dies
// without releasing it. Jobs guarded by TryLock (CRL generation, OCSP
// refresh sweeps) finish in seconds even for a million entries, so two
// minutes is ample and a crashed holder delays the next run by no more.
const JobLeaseTTL = 2 * time.Minute

// TryLock takes the single-writer lock named name without waiting, so that
// of several replicas (or a server and a CLI on one SQLite file) exactly
// one runs a job such as regenerating an issuer's CRL. ok is false when
// someone else holds it; then release is a no-op. Call release when done;
// it never fails (a release that cannot reach the database ends with the
// session on PostgreSQL, and with the lease's expiry on SQLite).
//
// PostgreSQL: a session-level pg_try_advisory_lock, keyed by schema and
// name, held on a connection taken out of the pool for the job's duration.
// A crashed holder's lock goes with its connection.
//
// SQLite: a lease row in job_leases expiring after JobLeaseTTL, taken by
// an upsert that only succeeds when the old lease has expired. SQLite
// has no session locks that outlive a transaction, and holding the
// database write lock for a whole job would stall every writer.
func (s *Store) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	if s.dialect == DialectPostgres {
		return s.tryAdvisoryLock(ctx, name)
	}
	var tok [12]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, false, err
	}
	holder := hex.EncodeToString(tok[:])
	now := s.now()
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO job_leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE job_leases.expires_at <= ?`), name, holder, s.timeArg(now.Add(JobLeaseTTL)), s.timeArg(now))
	if err != nil {
		return func() {}, false, fmt.Errorf("inventory: take job lease %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return func() {}, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = s.db.ExecContext(ctx, s.q(`DELETE FROM job_leases WHERE name = ? AND holder = ?`), name, holder)
	}, true, nil
}

func (s *Store) tryAdvisoryLock(ctx context.Context, name string) (func(), bool, error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return func() {}, false, fmt.Errorf("inventory: job lock %s: %w", name, err)
	}
	const key = `hashtext('mica.job:' || coalesce(current_schema(), '') || ':' || $1)`
	var got bool
	if err := conn.GetContext(ctx, &got, `SELECT pg_try_advisory_lock(`+key+`)`, name); err != nil {
		conn.Close()
		return func() {}, false, fmt.Errorf("inventory: job lock %s: %w", name, err)
	}
	if !got {
		conn.Close()
		return func() {}, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var released bool
		if err := conn.GetContext(ctx, &released, `SELECT pg_advisory_unlock(`+key+`)`, name); err != nil || !released {
			// Do not return a connection still holding the lock to the
			// pool: mark it bad so database/sql closes it, which ends the
			// session and with it the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, true, nil
}
