package inventory

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsUnavailable reports whether err means the database could not be
// reached or could not serve the request right now (connection refused or
// lost, server shutting down, database closed, busy or locked), as opposed
// to a refusal (ErrInvalid, ErrConflict, ErrNotFound, ErrDuplicate) or a
// bug. Front ends answer the former with 503 and Retry-After: a retry
// after the outage succeeds.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	for _, refusal := range []error{ErrInvalid, ErrConflict, ErrNotFound, ErrDuplicate} {
		if errors.Is(err, refusal) {
			return false
		}
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08: connection exception; 53: insufficient resources; 57P01-03:
		// admin or crash shutdown, cannot connect now.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "53") ||
			pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL:
			return true
		}
		return false
	}
	// database/sql's own "database is closed" is not exported, and an
	// unexpected EOF is what pgx reports for a server that went away
	// mid-query.
	msg := err.Error()
	return strings.Contains(msg, "sql: database is closed") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "conn closed")
}
