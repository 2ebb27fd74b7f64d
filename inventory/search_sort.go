package inventory

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Sort values of SearchFilter.Sort: one per column the certificate table
// shows. The empty string is the default, newest issued first.
const (
	SortIssued      = "issued"
	SortExpiry      = "expiry"
	SortCN          = "cn"
	SortSerial      = "serial"
	SortState       = "state"
	SortOwner       = "owner"
	SortTeam        = "team"
	SortEnvironment = "environment"
	SortIssuer      = "issuer"
	SortProfile     = "profile"
	SortProtocol    = "protocol"
	SortKeyType     = "key_type"
)

// Order values of SearchFilter.Order; "" means the column's natural order.
const (
	OrderAsc  = "asc"
	OrderDesc = "desc"
)

// SortKeys lists every accepted SearchFilter.Sort value except "".
var SortKeys = []string{SortIssued, SortExpiry, SortCN, SortSerial, SortState, SortOwner, SortTeam,
	SortEnvironment, SortIssuer, SortProfile, SortProtocol, SortKeyType}

// sortColumns maps a sort key to the certificates column it orders by.
// Every column is NOT NULL and has an index ending in id (migration 0008),
// so a sorted page is an index range scan. "issued" is id: ids are handed
// out in issuance order, and unlike not_before they are unique.
var sortColumns = map[string]string{
	"": "id", SortIssued: "id", SortExpiry: "not_after", SortCN: "common_name", SortSerial: "serial",
	SortState: "state", SortOwner: "owner", SortTeam: "team", SortEnvironment: "environment",
	SortIssuer: "issuer_id", SortProfile: "profile", SortProtocol: "protocol", SortKeyType: "key_type",
}

// searchOrder is a validated sort: column, direction, and the canonical
// names a cursor records.
type searchOrder struct {
	key, order string // canonical: key as given, order never ""
	col        string
	desc       bool
}

// CheckSort validates a sort key and order the way Search does, so a
// front end can reject a bad query string before running it.
// Errors: ErrInvalid.
func CheckSort(sort, order string) error {
	_, err := parseSort(sort, order)
	return err
}

func parseSort(sort, order string) (searchOrder, error) {
	col, ok := sortColumns[sort]
	if !ok {
		return searchOrder{}, fmt.Errorf("%w: unknown sort %q (want one of %s)", ErrInvalid, truncateForError(sort),
			strings.Join(SortKeys, ", "))
	}
	o := searchOrder{key: sort, col: col}
	switch order {
	case "":
		o.desc = sort == "" || sort == SortIssued
	case OrderAsc:
	case OrderDesc:
		o.desc = true
	default:
		return searchOrder{}, fmt.Errorf("%w: unknown order %q (want asc or desc)", ErrInvalid, truncateForError(order))
	}
	o.order = OrderAsc
	if o.desc {
		o.order = OrderDesc
	}
	return o, nil
}

// orderBy is the ORDER BY clause: the column, then id as the tie-breaker
// in the same direction, which is what makes (value, id) a keyset.
func (o searchOrder) orderBy() string {
	dir := ""
	if o.desc {
		dir = " DESC"
	}
	if o.col == "id" {
		return ` ORDER BY id` + dir
	}
	return ` ORDER BY ` + o.col + dir + `, id` + dir
}

// searchCursor is what a SearchPage.Next cursor carries: the sort it was
// made for (a cursor is only valid with the same sort and order), and the
// last row's sort value and id.
type searchCursor struct {
	Sort  string `json:"s"`
	Order string `json:"o"`
	Value string `json:"v,omitempty"`
	ID    int64  `json:"i"`
}

// searchRow is a certificate row plus the label columns a sort may use.
type searchRow struct {
	certRow
	Owner       string `db:"owner"`
	Team        string `db:"team"`
	Environment string `db:"environment"`
}

// searchColumns are certColumns plus searchRow's label columns.
const searchColumns = certColumns + `, owner, team, environment`

// cursorFor makes the opaque cursor continuing after row r.
func (o searchOrder) cursorFor(r *searchRow) string {
	c := searchCursor{Sort: o.key, Order: o.order, ID: r.ID}
	switch o.col {
	case "id":
	case "not_after":
		c.Value = normTime(r.NotAfter.Time).Format(time.RFC3339Nano)
	default:
		c.Value = r.sortValue(o.col)
	}
	raw, _ := json.Marshal(c) // strings and an int: cannot fail
	return base64.RawURLEncoding.EncodeToString(raw)
}

func (r *searchRow) sortValue(col string) string {
	switch col {
	case "common_name":
		return r.CommonName
	case "serial":
		return r.Serial
	case "state":
		return r.State
	case "owner":
		return r.Owner
	case "team":
		return r.Team
	case "environment":
		return r.Environment
	case "issuer_id":
		return r.IssuerID
	case "profile":
		return r.Profile
	case "protocol":
		return r.Protocol
	case "key_type":
		return r.KeyType
	}
	return ""
}

// keyset adds the condition selecting the rows after cursor c.
// Errors: ErrInvalid for a malformed cursor or one made for another sort
// or order.
func (o searchOrder) keyset(s *Store, w *where, c string) error {
	bad := fmt.Errorf("%w: malformed cursor", ErrInvalid)
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return bad
	}
	var cur searchCursor
	if err := json.Unmarshal(raw, &cur); err != nil || cur.ID <= 0 {
		return bad
	}
	if cur.Sort != o.key || cur.Order != o.order {
		return fmt.Errorf("%w: cursor belongs to sort %q %s, not %q %s; start again from the first page", ErrInvalid,
			truncateForError(cur.Sort), truncateForError(cur.Order), o.key, o.order)
	}
	cmp := ">"
	if o.desc {
		cmp = "<"
	}
	var v any = cur.Value
	switch o.col {
	case "id":
		w.add(`id `+cmp+` ?`, cur.ID)
		return nil
	case "not_after":
		at, err := time.Parse(time.RFC3339Nano, cur.Value)
		if err != nil {
			return bad
		}
		v = s.timeArg(at)
	default:
		if err := checkText("cursor", cur.Value); err != nil {
			return bad
		}
	}
	// A row value, which both planners turn into one range over the
	// (column, id) index.
	w.add(`(`+o.col+`, id) `+cmp+` (?, ?)`, v, cur.ID)
	return nil
}
