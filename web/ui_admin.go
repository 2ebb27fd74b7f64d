package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// listData feeds list.html: a heading, a table and an optional next link.
type listData struct {
	Intro    string
	Head     []string
	Rows     [][]string
	NextHref string
}

// discoveryData feeds discovery.html: schedules, then jobs and findings.
type discoveryData struct {
	listData
	Schedules []scheduleRow
}

type scheduleRow struct {
	ID                                          int64
	Targets, Ports, Every, NextRun, LastRun, By string
	Enabled                                     bool
}

// discoveryPage: GET /ui/discovery — schedules, jobs, and what discovery
// found. Operators queue scans and create schedules with the forms.
func (s *Server) discoveryPage(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.store.DiscoveryJobs(r.Context(), 0, 50)
	var scs []inventory.Schedule
	if err == nil {
		scs, err = s.store.Schedules(r.Context())
	}
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Discovery", messageOf(err), listData{})
		return
	}
	d := discoveryData{listData: listData{Head: []string{"Job", "Kind", "What", "State", "Found", "Errors", "By", "Created"}}}
	for _, sc := range scs {
		row := scheduleRow{ID: sc.ID, Targets: strings.Join(sc.Spec.Targets, ", "), Every: ca.HumanDuration(sc.Interval),
			Enabled: sc.Enabled, NextRun: sc.NextRun.UTC().Format("2006-01-02 15:04"), By: sc.CreatedBy}
		var ports []string
		for _, p := range sc.Spec.Ports {
			ports = append(ports, strconv.Itoa(p))
		}
		row.Ports = strings.Join(ports, ", ")
		if sc.LastRun != nil {
			row.LastRun = sc.LastRun.UTC().Format("2006-01-02 15:04")
			if sc.LastJobID > 0 {
				row.LastRun += fmt.Sprintf(" (job %d)", sc.LastJobID)
			}
			if sc.LastError != "" {
				row.LastRun += " refused: " + sc.LastError
			}
		}
		d.Schedules = append(d.Schedules, row)
	}
	for _, j := range jobs {
		var errs []string
		for _, e := range j.Errors {
			errs = append(errs, e.Target+": "+e.Error)
		}
		d.Rows = append(d.Rows, []string{strconv.FormatInt(j.ID, 10), j.Kind, string(j.Spec), j.State, strconv.Itoa(j.Found),
			strings.Join(errs, "; "), j.CreatedBy, j.CreatedAt.UTC().Format("2006-01-02 15:04")})
	}
	ext, _ := s.store.FindDiscovered(r.Context(), inventory.DiscoveredFilter{External: r.URL.Query().Get("external") == "true", Limit: 200})
	for _, x := range ext {
		owner := "MICA"
		if x.External {
			owner = "external"
		}
		d.Rows = append(d.Rows, []string{"", "certificate", x.Subject + " (issuer " + x.Issuer + ")", owner, "", "",
			x.KeyType, "last seen " + x.LastSeen.UTC().Format("2006-01-02 15:04")})
	}
	s.render(w, r, http.StatusOK, "discovery", "Discovery", "", d)
}

// uiQueueScan: POST /ui/discovery (targets=…, ports=…).
func (s *Server) uiQueueScan(w http.ResponseWriter, r *http.Request) {
	spec := inventory.JobSpec{}
	for _, t := range strings.Split(r.PostFormValue("targets"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			spec.Targets = append(spec.Targets, t)
		}
	}
	for _, p := range strings.Split(r.PostFormValue("ports"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil && n > 0 && n < 65536 {
			spec.Ports = append(spec.Ports, n)
		}
	}
	if len(spec.Targets) == 0 || len(spec.Targets) > 256 {
		s.render(w, r, http.StatusBadRequest, "list", "Discovery", "Give 1–256 targets.", listData{})
		return
	}
	if s.checkJob != nil {
		if err := s.checkJob("scan", spec); err != nil {
			s.uiAudit(r, inventory.Event{Action: "discovery.create", Object: "discovery:new", Outcome: "denied"})
			s.render(w, r, http.StatusForbidden, "list", "Discovery", err.Error(), listData{})
			return
		}
	}
	ev := s.uiEvent(r)
	if _, err := s.store.CreateDiscoveryJob(r.Context(), "scan", spec, ev); err != nil {
		s.render(w, r, statusOf(err), "list", "Discovery", messageOf(err), listData{})
		return
	}
	redirectDone(w, r, "/ui/discovery", "queued")
}
