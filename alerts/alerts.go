// Package alerts evaluates MICA's inventory for conditions a security team
// must hear about and delivers them as signed webhooks.
//
// # Kinds
//
//   - renewal_due: an issued certificate (no successor: a renewal marks its
//     predecessor superseded) whose remaining life is under its renewal
//     window, min(RenewalWindow, a third of its lifetime);
//   - expiring: the same with min(ExpiryWindow, a tenth of its lifetime);
//   - weak: an issued certificate with an RSA key under 2048 bits, a SHA-1
//     signature, or expired but still seen deployed (inventory's Weak
//     search filter);
//   - external: a certificate found by discovery that MICA did not issue;
//   - auth_failures: a source with at least DeniedBurst denials (failed
//     logins, refused API calls, and the counts inside per-minute denial
//     summaries, inventory.ActionDeniedSummary) within DeniedWindow;
//   - enrollment_hours, enrollment_network: an issuance outside its
//     profile's enrollment hours, or from a network never seen for its
//     requester (or profile) in the baseline (anomaly.go);
//   - key_burst, key_off_hours, key_networks: a signing key used far above
//     its hourly baseline, outside its allowed hours, or for requests from
//     mostly unseen networks (keyusage.go);
//   - key_rotation_due: an active key whose rotation is due within the key
//     policy's rotation warning, or overdue (keylife.go);
//   - backup_overdue: no backup verified within the key policy's backup
//     max age, or none ever (keylife.go).
//
// The windows scale with the lifetime so that a fleet of 24-hour
// certificates is not "in its renewal window" from birth.
//
// # De-duplication and grouping
//
// Each finding has a subject (issuer/serial, fingerprint, source). A
// subject is sent again only after RepeatAfter; the (kind, subject, last
// sent) rows live in the inventory (table alert_state), so every replica
// and restart agrees. All new findings of one kind in one evaluation go
// out as one alert listing them (at most MaxItems, with the total count),
// so a thousand certificates expiring together make one message.
//
// # Delivery
//
// Each alert is POSTed as JSON to every webhook with headers
// X-Mica-Timestamp (Unix seconds, also in the body as sent_at) and
// X-Mica-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's
// secret>. 5xx, 429 and network errors are retried with exponential
// backoff; other 4xx are not. Subjects are marked sent only when every
// webhook accepted the alert, so a receiver that was down gets them on the
// next evaluation.
//
// # Audit
//
// Every delivered alert appends one "alert.send" event (actor "system",
// object "alert:{kind}", details: kind, count, subjects) in the same
// transaction that marks its subjects sent.
//
// # One replica
//
// [Engine.Run] evaluates every Interval under the inventory job lock
// "alerts", so one replica of a fleet evaluates and sends.
package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mica-pki/mica/internal/humantime"
	"github.com/mica-pki/mica/inventory"
)

// Alert kinds.
const (
	KindRenewalDue   = "renewal_due"
	KindExpiring     = "expiring"
	KindWeak         = "weak"
	KindExternal     = "external"
	KindAuthFailures = "auth_failures"
)

// Header names of a delivery.
const (
	HeaderSignature = "X-Mica-Signature"
	HeaderTimestamp = "X-Mica-Timestamp"
)

// MaxItems caps the items listed in one alert; Count carries the total.
const MaxItems = 500

// maxScan caps how many certificates one kind examines per evaluation.
const maxScan = 20000

// Webhook is one receiver.
type Webhook struct {
	URL    string
	Secret []byte // HMAC-SHA256 key
}

// Config tunes the engine. Zero durations take the defaults shown.
type Config struct {
	Webhooks      []Webhook
	Interval      time.Duration // 5m: time between evaluations
	RenewalWindow time.Duration // 30d
	ExpiryWindow  time.Duration // 7d
	RepeatAfter   time.Duration // 24h: a subject is sent again after this
	DeniedBurst   int           // 10 denied events …
	DeniedWindow  time.Duration // … within 5m from one source
	Attempts      int           // 5 deliveries per webhook and alert
	Backoff       time.Duration // 1s, doubling
	Timeout       time.Duration // 10s per delivery attempt
	Anomaly       AnomalyConfig // enrollment and key-usage anomalies
	KeyLife       KeyLifeConfig // key rotation and backup; zero: off
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, 5*time.Minute)
	def(&c.RenewalWindow, 30*24*time.Hour)
	def(&c.ExpiryWindow, 7*24*time.Hour)
	def(&c.RepeatAfter, 24*time.Hour)
	def(&c.DeniedWindow, 5*time.Minute)
	def(&c.Backoff, time.Second)
	def(&c.Timeout, 10*time.Second)
	if c.DeniedBurst <= 0 {
		c.DeniedBurst = 10
	}
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	c.Anomaly.defaults()
}

// Store is what the engine reads and writes; *inventory.Store has it.
type Store interface {
	Search(ctx context.Context, f inventory.SearchFilter) (*inventory.SearchPage, error)
	FindDiscovered(ctx context.Context, f inventory.DiscoveredFilter) ([]inventory.Discovered, error)
	DeniedBySource(ctx context.Context, since time.Time) ([]inventory.SourceCount, error)
	AlertsSentSince(ctx context.Context, kind string, subjects []string, since time.Time) (map[string]bool, error)
	MarkAlertsSentEvent(ctx context.Context, kind string, subjects []string, at, forgetBefore time.Time, ev inventory.Event) error
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)

	// Anomaly detection (anomaly.go, keyusage.go).
	Enrollments(ctx context.Context, since, until time.Time, limit int) ([]inventory.Enrollment, error)
	EnrollmentSources(ctx context.Context, since, until time.Time) ([]inventory.EnrollmentSource, error)
	Keys(ctx context.Context) ([]inventory.Key, error)
	KeyUsageHours(ctx context.Context, since time.Time) ([]inventory.KeyHour, error)
	PruneKeyUsageHours(ctx context.Context, before time.Time) (int64, error)

	// Key lifecycle (keylife.go): the last verified backup.
	Events(ctx context.Context, f inventory.EventFilter) ([]inventory.Event, error)
}

var _ Store = (*inventory.Store)(nil)

// Item is one finding in an alert.
type Item struct {
	Subject    string    `json:"subject"` // de-duplication key
	IssuerID   string    `json:"issuer_id,omitempty"`
	KeyID      string    `json:"key_id,omitempty"` // key anomalies
	Serial     string    `json:"serial,omitempty"`
	CommonName string    `json:"common_name,omitempty"`
	NotAfter   time.Time `json:"not_after,omitzero"`
	Due        time.Time `json:"due,omitzero"` // key rotation due; when a backup became overdue
	Detail     string    `json:"detail,omitempty"`
}

// Alert is the JSON body of one delivery.
type Alert struct {
	Kind   string `json:"kind"`
	SentAt int64  `json:"sent_at"` // Unix seconds, equal to X-Mica-Timestamp
	Count  int    `json:"count"`   // new findings; Items lists at most MaxItems
	Items  []Item `json:"items"`
}

// Engine evaluates and delivers alerts.
type Engine struct {
	cfg    Config
	store  Store
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
}

// New returns an engine. log may be nil.
func New(cfg Config, st Store, log *slog.Logger) *Engine {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, store: st, log: log, now: time.Now,
		client: &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		sleep: func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}}
}

// Run evaluates every Interval until ctx ends, on the replica holding the
// "alerts" job lock.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		release, ok, err := e.store.TryLock(ctx, "alerts")
		switch {
		case err != nil:
			e.log.Warn("alerts: job lock", "err", err)
		case ok:
			if _, err := e.Evaluate(ctx); err != nil {
				e.log.Warn("alerts: evaluation failed", "err", err)
			}
			release()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Evaluate runs one evaluation: it finds every condition, drops subjects
// sent within RepeatAfter, delivers one alert per kind with new findings
// and records them as sent together with one "alert.send" audit event per
// delivered alert. It returns the alerts delivered.
func (e *Engine) Evaluate(ctx context.Context) ([]Alert, error) {
	now := e.now()
	found := map[string][]Item{}
	var err error
	if found[KindRenewalDue], found[KindExpiring], err = e.expiry(ctx, now); err != nil {
		return nil, err
	}
	if found[KindWeak], err = e.weak(ctx, now); err != nil {
		return nil, err
	}
	if found[KindExternal], err = e.external(ctx); err != nil {
		return nil, err
	}
	if found[KindAuthFailures], err = e.authFailures(ctx, now); err != nil {
		return nil, err
	}
	if found[KindEnrollmentHours], found[KindEnrollmentNetwork], err = e.enrollmentAnomalies(ctx, now); err != nil {
		return nil, err
	}
	if found[KindKeyBurst], found[KindKeyOffHours], found[KindKeyNetworks], err = e.keyAnomalies(ctx, now); err != nil {
		return nil, err
	}
	if found[KindKeyRotationDue], err = e.keyRotationDue(ctx, now); err != nil {
		return nil, err
	}
	if found[KindBackupOverdue], err = e.backupOverdue(ctx, now); err != nil {
		return nil, err
	}
	// Hourly buckets older than anything read here are no longer needed.
	keep := max(e.cfg.Anomaly.Baseline, time.Duration(e.cfg.Anomaly.BurstBaselineHours+2)*time.Hour)
	if _, err := e.store.PruneKeyUsageHours(ctx, now.Add(-keep)); err != nil {
		return nil, err
	}
	var sent []Alert
	var errs []error
	for _, kind := range []string{KindExpiring, KindRenewalDue, KindWeak, KindExternal, KindAuthFailures,
		KindEnrollmentHours, KindEnrollmentNetwork, KindKeyBurst, KindKeyOffHours, KindKeyNetworks,
		KindKeyRotationDue, KindBackupOverdue} {
		items := found[kind]
		if len(items) == 0 {
			continue
		}
		subjects := make([]string, len(items))
		for i, it := range items {
			subjects[i] = it.Subject
		}
		seen, err := e.store.AlertsSentSince(ctx, kind, subjects, now.Add(-e.cfg.RepeatAfter))
		if err != nil {
			return sent, err
		}
		var fresh []Item
		var freshSubjects []string
		for _, it := range items {
			if !seen[it.Subject] {
				fresh = append(fresh, it)
				freshSubjects = append(freshSubjects, it.Subject)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		a := Alert{Kind: kind, SentAt: now.Unix(), Count: len(fresh), Items: fresh[:min(len(fresh), MaxItems)]}
		if err := e.deliver(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("alerts: %s: %w", kind, err))
			continue
		}
		if err := e.store.MarkAlertsSentEvent(ctx, kind, freshSubjects, now, now.Add(-e.cfg.RepeatAfter), e.sentEvent(a, freshSubjects)); err != nil {
			return sent, err
		}
		sent = append(sent, a)
	}
	return sent, errors.Join(errs...)
}

// expiry finds issued certificates in their renewal and expiry windows.
// A certificate in both is reported as expiring only.
func (e *Engine) expiry(ctx context.Context, now time.Time) (renewal, expiring []Item, err error) {
	f := inventory.SearchFilter{CertFilter: inventory.CertFilter{States: []inventory.State{inventory.StateIssued},
		Now: now, ExpiresAfter: now, ExpiresBefore: now.Add(max(e.cfg.RenewalWindow, e.cfg.ExpiryWindow)), Limit: 1000},
		Sort: inventory.SortExpiry}
	for n := 0; n < maxScan; {
		page, err := e.store.Search(ctx, f)
		if err != nil {
			return nil, nil, err
		}
		for _, c := range page.Certificates {
			left, life := c.NotAfter.Sub(now), c.NotAfter.Sub(c.NotBefore)
			it := certItem(&c)
			switch {
			case left < min(e.cfg.ExpiryWindow, life/10):
				it.Detail = "expires in " + humantime.Format(left.Round(time.Minute))
				expiring = append(expiring, it)
			case left < min(e.cfg.RenewalWindow, life/3):
				it.Detail = "not renewed; expires in " + humantime.Format(left.Round(time.Minute))
				renewal = append(renewal, it)
			}
		}
		n += len(page.Certificates)
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	return renewal, expiring, nil
}

func (e *Engine) weak(ctx context.Context, now time.Time) ([]Item, error) {
	f := inventory.SearchFilter{CertFilter: inventory.CertFilter{Now: now, Limit: 1000}, Weak: true}
	var out []Item
	for len(out) < maxScan {
		page, err := e.store.Search(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, c := range page.Certificates {
			if c.State == inventory.StateRevoked {
				continue
			}
			it := certItem(&c)
			it.Detail = "weak key or signature, or expired but deployed (" + c.KeyType + ")"
			out = append(out, it)
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	return out, nil
}

func (e *Engine) external(ctx context.Context) ([]Item, error) {
	ds, err := e.store.FindDiscovered(ctx, inventory.DiscoveredFilter{External: true, Limit: 1000})
	if err != nil {
		return nil, err
	}
	out := make([]Item, 0, len(ds))
	for _, d := range ds {
		out = append(out, Item{Subject: "sha256:" + d.FingerprintSHA256, Serial: inventory.FormatSerial(d.Serial), CommonName: d.CommonName,
			NotAfter: d.NotAfter, Detail: "external certificate issued by " + d.Issuer})
	}
	return out, nil
}

func (e *Engine) authFailures(ctx context.Context, now time.Time) ([]Item, error) {
	counts, err := e.store.DeniedBySource(ctx, now.Add(-e.cfg.DeniedWindow))
	if err != nil {
		return nil, err
	}
	var out []Item
	for _, c := range counts {
		if c.Count >= int64(e.cfg.DeniedBurst) {
			out = append(out, Item{Subject: "source:" + c.Source,
				Detail: fmt.Sprintf("%d denied requests from %q within %s", c.Count, c.Source, e.cfg.DeniedWindow)})
		}
	}
	return out, nil
}

// sentEvent is the audit record of one delivered alert: its kind, count,
// (up to MaxItems) subjects and how many webhooks accepted it. Webhook
// URLs and secrets stay out of the audit log.
func (e *Engine) sentEvent(a Alert, subjects []string) inventory.Event {
	details, _ := json.Marshal(map[string]any{"kind": a.Kind, "count": a.Count,
		"subjects": subjects[:min(len(subjects), MaxItems)], "webhooks": len(e.cfg.Webhooks)})
	return inventory.Event{Time: time.Unix(a.SentAt, 0).UTC(), Actor: "system", Action: "alert.send", Protocol: "system",
		Object: "alert:" + a.Kind, Outcome: "ok", Details: details}
}

func certItem(c *inventory.Certificate) Item {
	return Item{Subject: "cert:" + c.IssuerID + "/" + c.Serial, IssuerID: c.IssuerID, Serial: inventory.FormatSerial(c.Serial),
		CommonName: c.CommonName, NotAfter: c.NotAfter}
}

// Sign returns the X-Mica-Signature value for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature under secret (for
// receivers written in Go).
func Verify(secret, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}

// deliver posts a to every webhook, retrying transient failures.
func (e *Engine) deliver(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range e.cfg.Webhooks {
		if err := e.post(ctx, w, body, a.SentAt); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) post(ctx context.Context, w Webhook, body []byte, ts int64) error {
	backoff := e.cfg.Backoff
	var last error
	for attempt := 1; attempt <= e.cfg.Attempts; attempt++ {
		retry, err := e.postOnce(ctx, w, body, ts)
		if err == nil {
			return nil
		}
		last = err
		if !retry || attempt == e.cfg.Attempts {
			break
		}
		e.log.Info("alerts: webhook delivery failed, retrying", "url", w.URL, "attempt", attempt, "err", err)
		if err := e.sleep(ctx, backoff); err != nil {
			return err
		}
		backoff *= 2
	}
	return fmt.Errorf("webhook %s: %w", w.URL, last)
}

// postOnce makes one attempt and says whether a failure is worth retrying.
func (e *Engine) postOnce(ctx context.Context, w Webhook, body []byte, ts int64) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mica-alerts")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.Secret, body))
	resp, err := e.client.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("status %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
}
