package web

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/ca"
)

// The Keys and Compliance pages are parsed with the others (pageNames);
// appending here keeps ui.go's list to its own pages.
func init() { pageNames = append(pageNames, "keys", "compliance") }

// mountUIKeys registers the key-lifecycle pages on the logged-in group.
func (s *Server) mountUIKeys(r chi.Router) {
	r.Get("/keys", s.uiRequire(s.keysPage, keyReaders...))
	r.Get("/compliance", s.uiRequire(s.compliancePage, complianceReaders...))
	r.Post("/compliance", s.uiRequire(s.uiRunCompliance, complianceReaders...))
}

// keysRow is one line of the Keys table, formatted.
type keysRow struct {
	keyView
	CreatedText, DueText, FirstUsedText, LastUsedText, PeriodText, ProtectionText string
}

// keysPage: GET /ui/keys — the key inventory with protection,
// cryptoperiod, rotation due dates, usage and a status badge.
func (s *Server) keysPage(w http.ResponseWriter, r *http.Request) {
	if s.keys == nil {
		s.render(w, r, http.StatusServiceUnavailable, "keys", "Keys", "The key inventory is not available on this server.", nil)
		return
	}
	keys, err := s.keys.Keys(r.Context())
	if err != nil {
		s.log.Error("keys page", "err", err)
		s.render(w, r, http.StatusServiceUnavailable, "keys", "Keys", "The key inventory cannot be read.", nil)
		return
	}
	now := s.now()
	rows := make([]keysRow, len(keys))
	for i, k := range keys {
		v := viewKey(k, now)
		rows[i] = keysRow{keyView: v, CreatedText: day(k.Created), DueText: dayPtr(k.RotationDue), FirstUsedText: dayPtr(k.FirstUsed), LastUsedText: dayPtr(k.LastUsed),
			PeriodText: period(k.Cryptoperiod), ProtectionText: protectionText(k.Backend, k.Protection)}
	}
	s.render(w, r, http.StatusOK, "keys", "Keys", "", rows)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02")
}

func dayPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return day(*t)
}

func period(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	days := int64(d / (24 * time.Hour))
	if days == 0 {
		return ca.HumanDuration(d.Round(time.Minute))
	}
	return itoa(days) + " days"
}
