package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

func init() { pageNames = append(pageNames, "audit") }

// auditData feeds audit.html: the filter form's values, then the table.
type auditData struct {
	listData
	Action, Actor, Object, Since string
	NewestHref                   string // back to the first page, same filter
}

// auditPageSize is how many events one page shows.
const auditPageSize = 100

// parseAuditSince reads the audit filter's "since": a date (2006-01-02, UTC
// midnight), a date and time from a datetime-local field
// (2006-01-02T15:04, UTC) or RFC 3339.
func parseAuditSince(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("since %q is not a date (2006-01-02) or date and time (2006-01-02T15:04)", truncate(v, 40))
}

// auditPage: GET /ui/audit?action=&actor=&object=&since=&before= — the
// event log, newest first, filtered by the form and paged with before.
func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) {
	q := cleanQuery(r.URL.Query())
	d := auditData{Action: q.Get("action"), Actor: q.Get("actor"), Object: q.Get("object"), Since: q.Get("since"),
		listData: listData{Head: []string{"ID", "Time", "Actor", "Action", "Object", "Outcome", "Protocol", "Source", "Details"}}}
	f := inventory.EventFilter{Action: d.Action, Actor: d.Actor, Object: d.Object, Limit: auditPageSize}
	if d.Since != "" {
		t, err := parseAuditSince(d.Since)
		if err != nil {
			s.render(w, r, http.StatusBadRequest, "audit", "Audit log", err.Error(), d)
			return
		}
		f.Since = t
	}
	if v := q.Get("before"); v != "" {
		b, err := strconv.ParseInt(v, 10, 64)
		if err != nil || b <= 0 {
			s.render(w, r, http.StatusBadRequest, "audit", "Audit log", "before must be a positive event ID.", d)
			return
		}
		f.Before = b
	}
	evs, err := s.store.Events(r.Context(), f)
	if err != nil {
		s.render(w, r, statusOf(err), "audit", "Audit log", messageOf(err), d)
		return
	}
	for _, e := range evs {
		d.Rows = append(d.Rows, []string{strconv.FormatInt(e.ID, 10), e.Time.UTC().Format(time.DateTime), e.Actor, e.Action,
			inventory.FormatObject(e.Object), e.Outcome, e.Protocol, e.Source, string(e.Details)})
	}
	if len(evs) == f.Limit {
		next := cloneWithout(q, "before")
		next.Set("before", strconv.FormatInt(evs[len(evs)-1].ID, 10))
		d.NextHref = "/ui/audit?" + next.Encode()
	}
	if f.Before > 0 {
		d.NewestHref = strings.TrimSuffix("/ui/audit?"+cloneWithout(q, "before").Encode(), "?")
	}
	s.render(w, r, http.StatusOK, "audit", "Audit log", "", d)
}
