package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/inventory"
)

// splitTags reads a form's tag field: words separated by spaces or commas.
func splitTags(v string) []string {
	return append([]string{}, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })...)
}

// uiLabels: POST /ui/certificates/{issuer}/{serial}/labels (owner, team,
// environment, tags) replaces the four labels; the store audits old and
// new in the same transaction.
func (s *Server) uiLabels(w http.ResponseWriter, r *http.Request) {
	issuer, serial := chi.URLParam(r, "issuer"), chi.URLParam(r, "serial")
	owner, team, env := strings.TrimSpace(r.PostFormValue("owner")), strings.TrimSpace(r.PostFormValue("team")),
		strings.TrimSpace(r.PostFormValue("environment"))
	tags := splitTags(r.PostFormValue("tags"))
	change := inventory.LabelChange{Owner: &owner, Team: &team, Environment: &env, Tags: &tags}
	ev := s.uiEvent(r)
	if _, _, err := s.store.ChangeLabels(r.Context(), issuer, serial, change, ev); err != nil {
		s.render(w, r, statusOf(err), "list", "Labels not saved", messageOf(err), listData{})
		return
	}
	redirectDone(w, r, "/ui/certificates/"+url.PathEscape(issuer)+"/"+url.PathEscape(serial), "labelled")
}

// uiBulk: POST /ui/certificates/bulk — the table's checked rows (cert =
// issuer/serial, repeated) and an action: revoke with a reason, or label
// (non-empty owner/team/environment are set, add_tag is added). Shows
// one result row per certificate.
func (s *Server) uiBulk(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "list", "Bulk action", "Unreadable form.", listData{})
		return
	}
	refs := r.PostForm["cert"]
	if len(refs) == 0 || len(refs) > MaxBulk {
		s.render(w, r, http.StatusBadRequest, "list", "Bulk action", fmt.Sprintf("Select 1 to %d certificates.", MaxBulk), listData{})
		return
	}
	b := bulkRequest{Action: r.PostFormValue("action"), Reason: r.PostFormValue("reason")}
	if b.Action == "label" {
		b.Reason = ""
		for _, f := range []struct {
			name string
			dst  **string
		}{{"owner", &b.Labels.Owner}, {"team", &b.Labels.Team}, {"environment", &b.Labels.Environment}} {
			if v := strings.TrimSpace(r.PostFormValue(f.name)); v != "" {
				*f.dst = &v
			}
		}
		b.Labels.AddTags = splitTags(r.PostFormValue("add_tag"))
	}
	if err := b.check(); err != nil {
		s.render(w, r, http.StatusBadRequest, "list", "Bulk action", err.Error(), listData{})
		return
	}
	var targets []certRef
	for _, ref := range refs {
		i, sn, ok := strings.Cut(ref, "/")
		if !ok || i == "" || sn == "" {
			s.render(w, r, http.StatusBadRequest, "list", "Bulk action", "Malformed certificate reference.", listData{})
			return
		}
		targets = append(targets, certRef{Issuer: i, Serial: sn})
	}
	res := s.runBulk(r.Context(), b, targets, map[string]int{"selected": len(targets)},
		s.uiEvent(r))
	verb := map[string]string{"revoke": "Revoked", "label": "Labelled"}[b.Action]
	d := listData{Head: []string{"Issuer", "Serial", "Result"},
		Intro: fmt.Sprintf("%s %d of %d certificates; %d failed.", verb, res.OK, res.Total, res.Failed)}
	for _, it := range res.Results {
		out := "ok"
		if !it.OK {
			out = strconv.Itoa(it.Status) + ": " + it.Error
		}
		d.Rows = append(d.Rows, []string{it.Issuer, it.Serial, out})
	}
	s.render(w, r, http.StatusOK, "list", "Bulk "+b.Action, "", d)
}
