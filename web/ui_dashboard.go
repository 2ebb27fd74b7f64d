package web

import (
	"fmt"
	"html"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

type countRow struct {
	Name  string
	Count int
}

type expiringRow struct{ Days, Count int }

type dashData struct {
	States   []countRow
	Expiring []expiringRow
	Weak     int
	External string
	Chart    template.HTML
	Issuers  []issuerView // with key rotation, CRL and OCSP freshness
	Pools    []inventory.PoolLevel
}

// dashboard: GET /ui/. Readers see the inventory summary; an auditor, who
// may only read the audit log, is sent there.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	u := uiUser(r.Context())
	if u.Role == inventory.RoleAuditor {
		http.Redirect(w, r, "/ui/audit", http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	now := s.now()
	var d dashData
	count := func(f inventory.SearchFilter) int {
		f.Now = now
		n, err := s.store.CountSearch(ctx, f)
		if err != nil {
			s.log.Error("dashboard count", "err", err)
		}
		return n
	}
	for _, st := range stateNames {
		d.States = append(d.States, countRow{st, count(inventory.SearchFilter{CertFilter: inventory.CertFilter{States: []inventory.State{inventory.State(st)}}})})
	}
	for _, days := range []int{7, 30, 90} {
		d.Expiring = append(d.Expiring, expiringRow{days, count(inventory.SearchFilter{ExpiringWithin: time.Duration(days) * 24 * time.Hour})})
	}
	d.Weak = count(inventory.SearchFilter{Weak: true})
	if ext, err := s.store.FindDiscovered(ctx, inventory.DiscoveredFilter{External: true, Limit: 1000}); err == nil {
		d.External = fmt.Sprint(len(ext))
		if len(ext) == 1000 {
			d.External = "1000+"
		}
	}
	days, err := s.store.IssuedPerDay(ctx, now.Add(-30*24*time.Hour))
	if err != nil {
		s.log.Error("dashboard chart", "err", err)
	}
	d.Chart = barChart(days, now)
	if d.Issuers, err = s.issuerViews(ctx, now); err != nil {
		s.log.Error("dashboard issuers", "err", err)
	}
	s.addFreshness(ctx, d.Issuers, now)
	if d.Pools, err = s.store.ESTPoolLevels(ctx); err != nil {
		s.log.Error("dashboard key pools", "err", err)
	}
	s.render(w, r, http.StatusOK, "dashboard", "Dashboard", "", d)
}

// barChart draws issuance per day for the last 30 days as inline SVG:
// no script, no external image, readable by screen readers through its
// title and the per-bar titles.
func barChart(days []inventory.DayCount, now time.Time) template.HTML {
	const n, barW, h = 30, 18, 120
	counts := map[string]int{}
	peak := 1
	for _, d := range days {
		counts[d.Day] = d.Count
		peak = max(peak, d.Count)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg role="img" aria-labelledby="chart-title" width="%d" height="%d" viewBox="0 0 %d %d">`, n*barW+40, h+30, n*barW+40, h+30)
	fmt.Fprintf(&b, `<title id="chart-title">Certificates issued per day, last %d days, peak %d</title>`, n, peak)
	for i := 0; i < n; i++ {
		day := now.UTC().AddDate(0, 0, i-n+1).Format("2006-01-02")
		c := counts[day]
		bh := c * h / peak
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d"><title>%s: %d</title></rect>`,
			30+i*barW, h-bh+5, barW-3, bh, html.EscapeString(day), c)
		if i%7 == 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, 30+i*barW, h+20, html.EscapeString(day[5:]))
		}
	}
	fmt.Fprintf(&b, `<text x="0" y="12">%d</text><text x="0" y="%d">0</text></svg>`, peak, h+5)
	return template.HTML(b.String()) // #nosec G203 -- built from numbers and escaped dates only
}
