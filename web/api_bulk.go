package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// MaxBulk caps how many certificates one bulk action touches.
const MaxBulk = 500

// certRef names one certificate.
type certRef struct {
	Issuer string `json:"issuer"`
	Serial string `json:"serial"`
}

// bulkRequest is one bulk action, from the API's JSON or the UI's form.
type bulkRequest struct {
	Action string                `json:"action"` // revoke, label
	Reason string                `json:"reason,omitempty"`
	Labels inventory.LabelChange `json:"labels"`
}

// bulkItem is the outcome for one certificate.
type bulkItem struct {
	Issuer string `json:"issuer"`
	Serial string `json:"serial"`
	OK     bool   `json:"ok"`
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

type bulkResult struct {
	Action  string     `json:"action"`
	Total   int        `json:"total"`
	OK      int        `json:"ok"`
	Failed  int        `json:"failed"`
	Results []bulkItem `json:"results"`
}

// check refuses a malformed action before any certificate is touched.
func (b bulkRequest) check() error {
	switch b.Action {
	case "revoke":
		if _, ok := ca.RevocationReasons[b.Reason]; !ok {
			return fmt.Errorf("unknown revocation reason %q", truncate(b.Reason, 40))
		}
	case "label":
		if b.Labels.Empty() {
			return fmt.Errorf("a label action needs at least one of owner, team, environment, tags, add_tags, remove_tags")
		}
		if err := b.Labels.Validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf(`action must be "revoke" or "label"`)
	}
	return nil
}

// runBulk applies b to each target in turn. Each item is atomic on its
// own (ca.Revoke, or the store's ChangeLabels transaction), so a failure
// leaves that certificate untouched and the others go on. One
// cert.bulk event records who, the action, the selector and the counts;
// each certificate also gets its usual event from the revoke or label
// path.
func (s *Server) runBulk(ctx context.Context, b bulkRequest, targets []certRef, selector any, by inventory.Event) bulkResult {
	res := bulkResult{Action: b.Action, Total: len(targets), Results: make([]bulkItem, 0, len(targets))}
	for _, t := range targets {
		item := bulkItem{Issuer: t.Issuer, Serial: inventory.FormatSerial(t.Serial), OK: true, Status: http.StatusOK}
		var err error
		switch {
		case t.Issuer == "":
			err = fmt.Errorf("%w: certificate %s", inventory.ErrNotFound, inventory.FormatSerial(t.Serial))
		case b.Action == "revoke":
			_, err = s.rev.Revoke(ctx, ca.RevokeRequest{IssuerID: t.Issuer, Serial: t.Serial, Reason: b.Reason,
				Actor: by.Actor, Protocol: by.Protocol, Source: by.Source})
		case b.Action == "label":
			_, _, err = s.store.ChangeLabels(ctx, t.Issuer, t.Serial, b.Labels, by)
		}
		if err != nil {
			item.OK, item.Status, item.Error = false, statusOf(err), messageOf(err)
			if item.Status == http.StatusInternalServerError {
				s.log.Error("bulk action item failed", "action", b.Action, "issuer", t.Issuer, "serial", inventory.FormatSerial(t.Serial), "err", err)
			}
			res.Failed++
		} else {
			res.OK++
		}
		res.Results = append(res.Results, item)
	}
	d := map[string]any{"action": b.Action, "count": res.Total, "ok": res.OK, "failed": res.Failed, "selector": selector}
	if b.Action == "revoke" {
		d["reason"] = b.Reason
	} else {
		d["labels"] = b.Labels
	}
	details, _ := json.Marshal(d)
	outcome := "ok"
	if res.Failed > 0 {
		outcome = "error"
	}
	by.Action, by.Object, by.Outcome, by.Details = "cert.bulk", "cert:bulk", outcome, details
	s.appendAudit(ctx, by)
	return res
}

// bulkTargets resolves serials (with an optional issuer, or
// "issuer/serial") or a filter to at most MaxBulk certificates.
func (s *Server) bulkTargets(ctx context.Context, issuer string, serials []string, filter map[string]string) ([]certRef, error) {
	if (len(serials) == 0) == (len(filter) == 0) {
		return nil, fmt.Errorf("%w: give either serials or a filter", inventory.ErrInvalid)
	}
	if len(serials) > MaxBulk {
		return nil, fmt.Errorf("%w: at most %d certificates per bulk action", inventory.ErrInvalid, MaxBulk)
	}
	var out []certRef
	if len(serials) > 0 {
		seen := map[certRef]bool{}
		for _, sr := range serials {
			ref := certRef{Issuer: issuer, Serial: sr}
			if i, sn, ok := strings.Cut(sr, "/"); ok {
				ref = certRef{Issuer: i, Serial: sn}
			}
			if ref.Issuer == "" {
				found, err := s.issuersOfSerial(ctx, ref.Serial)
				if err != nil {
					return nil, err
				}
				switch len(found) {
				case 0: // left without an issuer: reported per item as not found
				case 1:
					ref.Issuer = found[0]
				default:
					return nil, fmt.Errorf("%w: serial %s is used by several issuers: give issuer/serial", inventory.ErrConflict, inventory.FormatSerial(ref.Serial))
				}
			}
			if !seen[ref] {
				seen[ref] = true
				out = append(out, ref)
			}
		}
		return out, nil
	}
	q := url.Values{}
	for k, v := range filter {
		if k == "cursor" || k == "limit" {
			return nil, fmt.Errorf("%w: a bulk filter takes no cursor or limit", inventory.ErrInvalid)
		}
		q.Set(k, v)
	}
	f, err := ParseFilter(q, s.now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", inventory.ErrInvalid, err)
	}
	n, err := s.store.CountSearch(ctx, f)
	if err != nil {
		return nil, err
	}
	if n > MaxBulk {
		return nil, fmt.Errorf("%w: the filter matches %d certificates, more than %d: narrow it", inventory.ErrInvalid, n, MaxBulk)
	}
	f.Limit = MaxBulk
	page, err := s.store.Search(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, c := range page.Certificates {
		out = append(out, certRef{Issuer: c.IssuerID, Serial: c.Serial})
	}
	return out, nil
}

// bulkCertificates: POST /api/v1/certificates/bulk (operator)
//
//	{"action": "revoke", "reason": "keyCompromise", "serials": ["ab…", "ca/cd…"]}
//	{"action": "label", "labels": {"owner": "alice", "add_tags": ["pci"]}, "filter": {"team": "web"}}
//
// Answers 200 with one result per certificate; items fail on their own.
func (s *Server) bulkCertificates(w http.ResponseWriter, r *http.Request) {
	var body struct {
		bulkRequest
		Issuer  string            `json:"issuer"`
		Serials []string          `json:"serials"`
		Filter  map[string]string `json:"filter"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if err := body.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	targets, err := s.bulkTargets(r.Context(), body.Issuer, body.Serials, body.Filter)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	selector := any(map[string]any{"serials": len(body.Serials)})
	if body.Filter != nil {
		selector = map[string]any{"filter": body.Filter}
	}
	res := s.runBulk(r.Context(), body.bulkRequest, targets, selector, s.apiEvent(r))
	writeJSON(w, http.StatusOK, res)
}
