// Package inventory is MICA's store: issuers, end-entity certificates with
// their lifecycle state, and the append-only, hash-chained audit log.
//
// # Backends
//
// One [Store] serves two SQL dialects through jmoiron/sqlx:
//
//   - SQLite (modernc.org/sqlite, pure Go) for a single process. [Open]
//     takes "sqlite:/var/lib/mica/mica.db" or a bare path ending in ".db".
//     Every pooled connection runs with WAL, foreign_keys=ON,
//     synchronous=FULL and a busy timeout, and every transaction begins
//     IMMEDIATE so two writers never deadlock upgrading a read lock.
//   - PostgreSQL (jackc/pgx/v5 stdlib) for several replicas behind a load
//     balancer. [Open] takes a "postgres://" or "postgresql://" URL; extra
//     query parameters such as search_path are sent as run-time parameters.
//
// Queries are written once with '?' placeholders and rebound per dialect.
// Times are stored in UTC with microsecond precision on both backends
// (TEXT in a fixed-width layout on SQLite, TIMESTAMPTZ on PostgreSQL), and
// every time the store accepts is truncated the same way before it is
// written or hashed, so values read back compare equal.
//
// # Schema and migrations
//
// Migrations are embedded (migrations/NNNN_name[.dialect].sql), recorded in
// schema_migrations and applied by [Open] in one transaction. On PostgreSQL
// that transaction first takes a transaction-scoped advisory lock keyed by
// the current schema, so replicas starting together migrate exactly once.
// A database migrated by a newer MICA is refused rather than guessed at.
//
// # Certificate lifecycle
//
// Issuance is two-phase so that "a certificate is committed to the store
// before any client receives it":
//
//	ReserveCertificate   → state requested (serial claimed, nothing signed)
//	CompleteCertificate  → issued, DER stored, event appended, one transaction
//	FailCertificate      → failed (signing did not happen or was abandoned)
//	RevokeCertificate    → revoked (from issued or superseded)
//
// A crash between signing and CompleteCertificate leaves a requested row:
// a lost signature, never a returned certificate that the inventory, CRL or
// OCSP do not know. Completing a renewal (Predecessor set) marks the
// predecessor superseded in the same transaction. "expired" is never
// stored; it is derived from not_after (see [Certificate.EffectiveState]
// and [CertFilter].Now).
//
// # Ownership, search and discovery
//
// Certificates carry owner, team, environment and tags ([Store.SetLabels])
// and the key size and signature algorithm of their DER. [Store.Search]
// takes one [SearchFilter] (text, state, issuer, profile, protocol,
// ownership, key type, expiry window, weak, seen/not seen since) and pages
// by an opaque keyset cursor. Discovery (package discover) records
// [Sighting]s: a certificate, keyed by fingerprint and matched to MICA's
// record or marked external, apart from the places it is installed.
// Discovery jobs are claimed with a conditional UPDATE so one replica runs
// each. API tokens, UI users and sessions are stored here too, as hashes.
//
// # Audit log
//
// Every state change appends an [Event] in the transaction that makes the
// change. Events form a hash chain (Hash = SHA-256(PrevHash ‖ canonical
// JSON)); database triggers reject UPDATE and DELETE on the events table,
// and [Store.VerifyEvents] recomputes the chain, so an edited, removed or
// truncated entry is reported as [ErrTampered]. Appends serialise on the
// single event_chain_head row (row lock on PostgreSQL, the IMMEDIATE write
// lock on SQLite), which keeps the chain linear across replicas.
//
// # Errors
//
// Methods return errors wrapping [ErrNotFound], [ErrDuplicate],
// [ErrConflict], [ErrInvalid] or [ErrTampered] for the conditions their
// documentation names; test with errors.Is. Anything else is an
// infrastructure failure (database unreachable, disk full, context
// cancelled) and should be treated as "try again later". Error messages
// never contain the DSN.
//
// Serials are accepted in any common spelling (upper or lower case, with
// colons or spaces, optional 0x) and stored as canonical lower-case hex
// without leading zeros; see [NormalizeSerial].
package inventory
