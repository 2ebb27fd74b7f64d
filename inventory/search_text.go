package inventory

import (
	"strings"
	"unicode/utf8"
)

// ftsMinRunes is the shortest needle the trigram index can look up.
const ftsMinRunes = 3

// ftsMaxRunes caps the part of a needle looked up in the index.
const ftsMaxRunes = 16

// fingerprintHexLen is the length of a SHA-256 fingerprint in hex.
const fingerprintHexLen = 64

// indexedTextCondition is textCondition (the one definition of what free
// text matches: a substring of search_text, and for hex input of the
// serial or fingerprint) made index-driven.
//
// PostgreSQL: textCondition's LIKEs as they are, fenced in a subquery;
// the pg_trgm GIN indexes of migration 0008 serve LIKE '%needle%'.
//
// SQLite: the FTS5 trigram table certificates_fts first narrows the rows
// to those holding every needle as a substring (a phrase of trigrams),
// then textCondition re-checks them, so the result is exactly what the
// LIKEs alone return. A needle under three characters cannot use a
// trigram index: such queries keep the plain LIKE scan.
func (s *Store) indexedTextCondition(t string) (string, []any) {
	cond, args := s.textCondition(t)
	if s.dialect != DialectSQLite {
		// OFFSET 0 keeps the planner from merging the lookup into the
		// page query: merged, it underestimates how rare a long needle is
		// and walks the whole id index in page order looking for 101
		// matches (0.75 s at 1M rows for a fingerprint) instead of asking
		// the trigram indexes and sorting the few rows they return.
		return `id IN (SELECT id FROM certificates WHERE ` + cond + ` OFFSET 0)`, args
	}
	type needle struct{ col, v string }
	needles := []needle{{"search_text", strings.ToLower(t)}}
	exactFP := ""
	if h, ok := stripHex(t); ok {
		serial := strings.TrimLeft(h, "0")
		if serial == "" {
			serial = "0"
		}
		needles = append(needles, needle{"serial", serial})
		if len(h) == fingerprintHexLen {
			// A whole fingerprint is a substring only of itself: an
			// equality on the fingerprint index, not a 62-trigram phrase.
			exactFP = h
		} else {
			needles = append(needles, needle{"fingerprint_sha256", h})
		}
	}
	match := make([]string, len(needles))
	for i, n := range needles {
		if utf8.RuneCountInString(n.v) < ftsMinRunes {
			return cond, args
		}
		if r := []rune(n.v); len(r) > ftsMaxRunes {
			// Rows holding the whole needle hold its start: the index
			// narrows by the start, cond checks the rest. A phrase of
			// every trigram of a long needle only reads more postings.
			n.v = string(r[:ftsMaxRunes])
		}
		// A quoted FTS5 string is one phrase; quotes inside are doubled.
		match[i] = n.col + ` : "` + strings.ReplaceAll(n.v, `"`, `""`) + `"`
	}
	ids := `SELECT rowid FROM certificates_fts WHERE certificates_fts MATCH ?`
	pre := []any{strings.Join(match, " OR ")}
	if exactFP != "" {
		ids += ` UNION SELECT id FROM certificates WHERE fingerprint_sha256 = ?`
		pre = append(pre, exactFP)
	}
	return `id IN (` + ids + `) AND ` + cond, append(pre, args...)
}
