package inventory

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteTimeLayout is how times are stored on SQLite: always UTC, always
// six fractional digits. The fixed width is what makes lexical order equal
// chronological order, which every range filter relies on. Do not change
// it without a migration rewriting every time column.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// normTime is the one precision every time goes through before it is
// stored, compared or hashed: UTC, truncated to the microsecond that
// PostgreSQL keeps. Truncate also drops the monotonic reading.
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// timeArg converts t to the value bound for a time column: a fixed-width
// string on SQLite (the driver's default format varies in width and
// carries a monotonic suffix), a time.Time on PostgreSQL.
func (s *Store) timeArg(t time.Time) any {
	t = normTime(t)
	if s.dialect == DialectSQLite {
		return t.Format(sqliteTimeLayout)
	}
	return t
}

// nullTimeArg is timeArg for nullable columns: nil stays NULL.
func (s *Store) nullTimeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return s.timeArg(*t)
}

// dbTime scans a time column from either backend: time.Time from pgx,
// TEXT from SQLite. NULL scans as the zero time with Valid false.
type dbTime struct {
	Time  time.Time
	Valid bool
}

// Scan implements sql.Scanner.
func (t *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*t = dbTime{}
		return nil
	case time.Time:
		*t = dbTime{Time: normTime(x), Valid: true}
		return nil
	case string:
		return t.parse(x)
	case []byte:
		return t.parse(string(x))
	}
	return fmt.Errorf("inventory: cannot scan %T into a time", v)
}

func (t *dbTime) parse(s string) error {
	p, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("inventory: stored time %q: %w", s, err)
	}
	*t = dbTime{Time: normTime(p), Valid: true}
	return nil
}

// ptr returns nil for NULL, else a pointer to the time.
func (t dbTime) ptr() *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time
	return &v
}

// isUniqueViolation reports a UNIQUE or PRIMARY KEY clash on either backend.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return false
}

// isForeignKeyViolation reports a dangling reference on either backend.
func isForeignKeyViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503"
	}
	return false
}

// checkText rejects strings PostgreSQL cannot store (NUL, invalid UTF-8)
// up front, so both backends accept exactly the same data and a bad CSR
// field becomes ErrInvalid rather than an opaque driver error.
func checkText(field, v string) error {
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrInvalid, field)
	}
	return nil
}

// cleanText makes attacker-influenced audit fields storable instead of
// rejecting them: an audit append must not fail because a client sent a
// NUL byte in a header.
func cleanText(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	return strings.ReplaceAll(v, "\x00", "\uFFFD")
}

// escapeLike escapes LIKE wildcards; queries use ESCAPE '\'.
func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// clampLimit applies the documented page size rules: 0 (or negative)
// means 100, anything above 1000 is cut to 1000.
func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

// where accumulates AND-ed conditions with their arguments in order.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
