package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Enrollments as the alert engine's anomaly detection sees them: the
// successful "cert.issue" audit events (any protocol), which carry who
// asked (actor), from where (source), how (protocol), for which
// certificate (object "cert:{issuer}/{serial}") and under which profile
// (details.profile). Reading the audit log rather than process memory is
// what makes the detection the same on every replica.

// Enrollment is one successful issuance.
type Enrollment struct {
	ID        int64
	At        time.Time
	Requester string
	Protocol  string
	Source    string
	Object    string // cert:{issuer}/{serial}
	IssuerID  string
	Profile   string
}

// EnrollmentSource is one distinct (issuer, requester, source, profile)
// seen issuing in a window.
type EnrollmentSource struct {
	IssuerID  string `db:"issuer_id"`
	Requester string `db:"actor"`
	Source    string `db:"source"`
	Profile   string `db:"profile"`
}

// maxEnrollments caps one Enrollments call.
const maxEnrollments = 100000

// Enrollments returns the successful issuances in [since, until), oldest
// first, at most limit (0 or more than 100000: 100000).
func (s *Store) Enrollments(ctx context.Context, since, until time.Time, limit int) ([]Enrollment, error) {
	if limit <= 0 || limit > maxEnrollments {
		limit = maxEnrollments
	}
	var rows []struct {
		ID       int64  `db:"id"`
		At       dbTime `db:"at"`
		Actor    string `db:"actor"`
		Protocol string `db:"protocol"`
		Source   string `db:"source"`
		Object   string `db:"object"`
		Details  string `db:"details"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT id, at, actor, protocol, source, object, details FROM events
		WHERE action = 'cert.issue' AND outcome = 'ok' AND at >= ? AND at < ? ORDER BY at, id LIMIT ?`),
		s.timeArg(since), s.timeArg(until), limit); err != nil {
		return nil, fmt.Errorf("inventory: read enrollments: %w", err)
	}
	out := make([]Enrollment, len(rows))
	for i, r := range rows {
		var d struct {
			Profile string `json:"profile"`
		}
		_ = json.Unmarshal([]byte(r.Details), &d) // no profile recorded: ""
		out[i] = Enrollment{ID: r.ID, At: r.At.Time, Requester: r.Actor, Protocol: r.Protocol, Source: r.Source,
			Object: r.Object, IssuerID: issuerOfObject(r.Object), Profile: d.Profile}
	}
	return out, nil
}

// EnrollmentSources returns the distinct (issuer, requester, source,
// profile) of the successful issuances in [since, until): the baseline
// an enrollment's address is compared with. The grouping runs in the
// database, so a month of issuances comes back as one row per device and
// address.
func (s *Store) EnrollmentSources(ctx context.Context, since, until time.Time) ([]EnrollmentSource, error) {
	// The profile sits in the details JSON, the issuer in the object
	// "cert:{issuer}/{serial}". Details that are not a JSON object (events
	// appended by hand) give "".
	profile := `CASE WHEN details LIKE '{%' THEN COALESCE(json_extract(details, '$.profile'), '') ELSE '' END`
	issuer := `CASE WHEN object LIKE 'cert:%/%' THEN substr(object, 6, instr(object, '/') - 6) ELSE '' END`
	if s.dialect == DialectPostgres {
		profile = `CASE WHEN details LIKE '{%' THEN COALESCE(details::json ->> 'profile', '') ELSE '' END`
		issuer = `CASE WHEN object LIKE 'cert:%/%' THEN split_part(substr(object, 6), '/', 1) ELSE '' END`
	}
	var out []EnrollmentSource
	if err := s.db.SelectContext(ctx, &out, s.q(`SELECT DISTINCT `+issuer+` AS issuer_id, actor, source, `+profile+` AS profile
		FROM events WHERE action = 'cert.issue' AND outcome = 'ok' AND at >= ? AND at < ?`),
		s.timeArg(since), s.timeArg(until)); err != nil {
		return nil, fmt.Errorf("inventory: read enrollment sources: %w", err)
	}
	return out, nil
}

// issuerOfObject returns the issuer of "cert:{issuer}/{serial}", else "".
func issuerOfObject(object string) string {
	rest, ok := strings.CutPrefix(object, "cert:")
	if !ok {
		return ""
	}
	iss, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return iss
}
