package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// listData feeds list.html: a heading, a table and an optional next link.
type listData struct {
	Intro    string
	ScanForm bool // discovery page: show the queue-a-scan form to operators
	Head     []string
	Rows     [][]string
	NextHref string
}

// issuersPage: GET /ui/issuers — chain, key protection, validity.
func (s *Server) issuersPage(w http.ResponseWriter, r *http.Request) {
	iss, err := s.store.Issuers(r.Context())
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Issuers", messageOf(err), listData{})
		return
	}
	d := listData{Head: []string{"ID", "Subject", "Parent", "Key", "Protection", "Valid from", "Valid to", "Status"}}
	for _, i := range iss {
		parent := i.ParentID
		if i.IsRoot {
			parent = "(root)"
		}
		d.Rows = append(d.Rows, []string{i.ID, i.Subject, parent, i.KeyType, keyProtection(i.KeyURI),
			i.NotBefore.UTC().Format("2006-01-02"), i.NotAfter.UTC().Format("2006-01-02"), i.Status})
	}
	s.render(w, r, http.StatusOK, "list", "Issuers", "", d)
}

func keyProtection(uri string) string {
	switch {
	case uri == "":
		return "offline"
	case strings.HasPrefix(uri, "pkcs11:"):
		return "HSM (PKCS#11)"
	case strings.HasPrefix(uri, "softkms:"):
		return "software (encrypted file)"
	}
	return "other"
}

// discoveryPage: GET /ui/discovery — jobs, and what discovery found.
// Operators queue scans with the form (POST /ui/discovery).
func (s *Server) discoveryPage(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.store.DiscoveryJobs(r.Context(), 0, 50)
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Discovery", messageOf(err), listData{})
		return
	}
	d := listData{Head: []string{"Job", "Kind", "What", "State", "Found", "Errors", "By", "Created"},
		ScanForm: true, Intro: "Scans run on a server replica within seconds; targets outside the allow-list are refused. Certificates found are listed below the jobs."}
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
	s.render(w, r, http.StatusOK, "list", "Discovery", "", d)
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
	ev := inventory.Event{Actor: "user:" + uiUser(r.Context()).Name, Protocol: "ui", Source: sourceOf(r), Outcome: "ok"}
	if _, err := s.store.CreateDiscoveryJob(r.Context(), "scan", spec, ev); err != nil {
		s.render(w, r, statusOf(err), "list", "Discovery", messageOf(err), listData{})
		return
	}
	redirectDone(w, r, "/ui/discovery", "queued")
}

// auditPage: GET /ui/audit[?action=&actor=&before=] — the event log.
func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := inventory.EventFilter{Action: q.Get("action"), Actor: q.Get("actor"), Object: q.Get("object"), Limit: 100}
	if b, err := strconv.ParseInt(q.Get("before"), 10, 64); err == nil && b > 0 {
		f.Before = b
	}
	evs, err := s.store.Events(r.Context(), f)
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Audit log", messageOf(err), listData{})
		return
	}
	d := listData{Head: []string{"ID", "Time", "Actor", "Action", "Object", "Outcome", "Protocol", "Source", "Details"},
		Intro: "Newest first. Filter with ?action=cert. (prefix), ?actor=, ?object=."}
	for _, e := range evs {
		d.Rows = append(d.Rows, []string{strconv.FormatInt(e.ID, 10), e.Time.UTC().Format(time.DateTime), e.Actor, e.Action,
			e.Object, e.Outcome, e.Protocol, e.Source, string(e.Details)})
	}
	if len(evs) == f.Limit {
		next := cloneWithout(q, "before")
		next.Set("before", fmt.Sprint(evs[len(evs)-1].ID))
		d.NextHref = "/ui/audit?" + next.Encode()
	}
	s.render(w, r, http.StatusOK, "list", "Audit log", "", d)
}

// usersPage: GET /ui/users (admin) — accounts and roles. Accounts are
// created with `mica user create`.
func (s *Server) usersPage(w http.ResponseWriter, r *http.Request) {
	us, err := s.store.Users(r.Context())
	if err != nil {
		s.render(w, r, statusOf(err), "list", "Users", messageOf(err), listData{})
		return
	}
	d := listData{Head: []string{"Name", "Role", "Created", "Locked until"}, Intro: "Create accounts with: mica user create NAME --role R --password-file F"}
	for _, u := range us {
		locked := ""
		if u.LockedUntil != nil && u.LockedUntil.After(s.now()) {
			locked = u.LockedUntil.UTC().Format(time.DateTime)
		}
		d.Rows = append(d.Rows, []string{u.Name, u.Role, u.CreatedAt.UTC().Format("2006-01-02"), locked})
	}
	s.render(w, r, http.StatusOK, "list", "Users", "", d)
}
