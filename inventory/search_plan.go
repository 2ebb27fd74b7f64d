package inventory

import (
	"context"
	"fmt"
	"strings"
)

// probeRows bounds the index-order probe: how many rows, in sort order,
// SQLite may read looking for a page before the planner's own plan runs.
const probeRows = 10000

// searchIDs returns SQL selecting the ids of one page (n rows matching
// filter w after keyset k, in order o), to be used as `id IN (…)`.
//
// Selecting ids first keeps wide rows (the DER) out of any sort: when the
// planner must sort the matches, it sorts (key, id) pairs and only the n
// rows of the page are read in full.
//
// Some pages are found faster by walking the rows in page order than by
// the planner's plan, and the planner cannot tell which:
//
//   - SQLite plans without value statistics (no STAT4), so for a broad
//     filter plus a sort ("issued, by owner") it may pick the filter's
//     index and sort most of the table (seconds at 1M rows). Probed when
//     its plan sorts.
//   - Free text is looked up in the trigram index first (SQLite FTS5;
//     on PostgreSQL fenced, see indexedTextCondition), which is right for
//     rare needles but makes a common one ("example.com") collect every
//     match. Probed whenever free text is set; probe is then w with the
//     bare LIKEs.
//
// The probe reads the next probeRows rows in page order (an index range)
// and filters them: if they hold a full page, it is the page the full
// query returns, since both follow the page order; otherwise the filter
// is selective and the planner's plan runs.
func (s *Store) searchIDs(ctx context.Context, o searchOrder, w, probe, k *where, n int) (string, []any, error) {
	all := where{conds: append(append([]string{}, w.conds...), k.conds...), args: append(append([]any{}, w.args...), k.args...)}
	sel := `SELECT id FROM certificates` + all.sql() + o.orderBy() + fmt.Sprintf(` LIMIT %d`, n)
	if len(w.conds) == 0 {
		return sel, all.args, nil
	}
	if probe == nil && s.dialect == DialectSQLite {
		sorts, err := s.planSorts(ctx, sel, all.args)
		if err != nil {
			return "", nil, err
		}
		if sorts {
			probe = w
		}
	}
	if probe == nil {
		return sel, all.args, nil
	}
	// Aliased to certificates so the filter's column and subquery
	// references read the same.
	q := `SELECT id FROM (SELECT * FROM certificates` + k.sql() + o.orderBy() + fmt.Sprintf(` LIMIT %d`, probeRows) +
		`) AS certificates` + probe.sql() + o.orderBy() + fmt.Sprintf(` LIMIT %d`, n)
	var ids []int64
	if err := s.db.SelectContext(ctx, &ids, s.q(q), append(append([]any{}, k.args...), probe.args...)...); err != nil {
		return "", nil, fmt.Errorf("inventory: search certificates: %w", err)
	}
	if len(ids) < n {
		return sel, all.args, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", "), args, nil
}

// planSorts reports whether SQLite's plan for query sorts its result in a
// temporary b-tree rather than reading it in index order.
func (s *Store) planSorts(ctx context.Context, query string, args []any) (bool, error) {
	var plan []struct {
		ID      int    `db:"id"`
		Parent  int    `db:"parent"`
		NotUsed int    `db:"notused"`
		Detail  string `db:"detail"`
	}
	if err := s.db.SelectContext(ctx, &plan, `EXPLAIN QUERY PLAN `+query, args...); err != nil {
		return false, fmt.Errorf("inventory: plan search: %w", err)
	}
	for _, p := range plan {
		if p.Parent == 0 && strings.Contains(p.Detail, "TEMP B-TREE FOR") && strings.Contains(p.Detail, "ORDER BY") {
			return true, nil
		}
	}
	return false, nil
}
