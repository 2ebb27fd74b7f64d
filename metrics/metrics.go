// Package metrics exports MICA's inventory as Prometheus metrics: a
// [StoreCollector] queries the inventory at scrape time, behind a short
// cache, so every replica answers /metrics from the shared database and
// frequent scrapes cost one set of indexed aggregate queries per TTL.
//
// Series (all prefixed mica_):
//
//	certificates{state}                           gauge: by effective state, "expired" derived from time
//	certificates_issued_total{protocol}           counter: "cert.issue" audit events
//	certificates_revoked_total{protocol}          counter: "cert.revoke" audit events
//	denied_total{action}                          counter: audit events with outcome "denied" (failed logins, refused API calls)
//	issuer_earliest_expiry_timestamp_seconds{issuer}  gauge: earliest notAfter among the issuer's unexpired issued certificates
//	crl_next_update_timestamp_seconds{issuer}     gauge: earliest nextUpdate of the issuer's stored full CRLs
//	crl_next_update_seconds{issuer}               gauge: seconds from the scrape until then; negative means stale
//	ocsp_responses{issuer}                        gauge: pre-signed OCSP responses stored
//	ocsp_oldest_response_age_seconds{issuer}      gauge: age of the oldest pre-signed response (from its thisUpdate)
//	ocsp_next_update_timestamp_seconds{issuer}    gauge: earliest nextUpdate among them; past means a stale response
//	key_signatures_total{key,class}               counter: signatures made with the key (flushed by the signing path)
//	key_signatures_last_hour{key}                 gauge: signatures in the last full UTC hour (key_usage_hourly)
//	key_signatures_current_hour{key}              gauge: signatures so far in the current UTC hour
//	inventory_metrics_up                          gauge: 1 when the last refresh succeeded
//
// The counters are computed from the append-only audit log: the first
// refresh counts it from the start, later ones only the events appended
// since (a primary-key range), so they are the same on every replica and
// never reset backwards. Key-pool levels are exported by package enroll
// (mica_est_pool_keys) on the same registry.
package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mica-pki/mica/inventory"
)

// Source is the part of *inventory.Store the collector reads.
type Source interface {
	CertificateStateCounts(ctx context.Context, now time.Time) ([]inventory.StateCount, error)
	EarliestExpiry(ctx context.Context, now time.Time) ([]inventory.IssuerTime, error)
	CRLNextUpdates(ctx context.Context) ([]inventory.IssuerTime, error)
	EventCountsSince(ctx context.Context, afterID int64) ([]inventory.EventCount, int64, error)
	OCSPFreshnessByIssuer(ctx context.Context) ([]inventory.OCSPFreshness, error)
	Keys(ctx context.Context) ([]inventory.Key, error)
	KeyUsageHours(ctx context.Context, since time.Time) ([]inventory.KeyHour, error)
}

var _ Source = (*inventory.Store)(nil)

// DefaultTTL is how long one refresh of the store serves scrapes.
const DefaultTTL = 15 * time.Second

// queryTimeout bounds one refresh, so a slow database cannot hold
// scrapes forever.
const queryTimeout = 10 * time.Second

// states are always exported, with 0 when absent, so dashboards and alert
// rules never see a series disappear.
var states = []inventory.State{"requested", "issued", "superseded", "revoked", "expired", "failed"}

var (
	descCerts = prometheus.NewDesc("mica_certificates",
		"Certificates in the inventory by effective state (expired is derived from notAfter).", []string{"state"}, nil)
	descIssued = prometheus.NewDesc("mica_certificates_issued_total",
		"Certificates issued, by enrollment protocol (from the audit log).", []string{"protocol"}, nil)
	descRevoked = prometheus.NewDesc("mica_certificates_revoked_total",
		"Certificates revoked, by protocol of the revocation request (from the audit log).", []string{"protocol"}, nil)
	descDenied = prometheus.NewDesc("mica_denied_total",
		"Denied actions in the audit log (failed logins, refused API and UI calls), by action.", []string{"action"}, nil)
	descExpiry = prometheus.NewDesc("mica_issuer_earliest_expiry_timestamp_seconds",
		"Earliest notAfter (Unix time) among the issuer's issued, unexpired certificates.", []string{"issuer"}, nil)
	descCRLNext = prometheus.NewDesc("mica_crl_next_update_timestamp_seconds",
		"Earliest nextUpdate (Unix time) among the issuer's stored full CRLs.", []string{"issuer"}, nil)
	descCRLFresh = prometheus.NewDesc("mica_crl_next_update_seconds",
		"Seconds until the issuer's oldest stored full CRL reaches nextUpdate; negative when stale.", []string{"issuer"}, nil)
	descOCSPCount = prometheus.NewDesc("mica_ocsp_responses",
		"Pre-signed OCSP responses stored for the issuer.", []string{"issuer"}, nil)
	descOCSPAge = prometheus.NewDesc("mica_ocsp_oldest_response_age_seconds",
		"Seconds since the thisUpdate of the issuer's oldest pre-signed OCSP response.", []string{"issuer"}, nil)
	descOCSPNext = prometheus.NewDesc("mica_ocsp_next_update_timestamp_seconds",
		"Earliest nextUpdate (Unix time) among the issuer's pre-signed OCSP responses; in the past means one is stale.", []string{"issuer"}, nil)
	descKeySigs = prometheus.NewDesc("mica_key_signatures_total",
		"Signatures made with the key, as flushed to the key inventory by the signing path.", []string{"key", "class"}, nil)
	descKeyLastHour = prometheus.NewDesc("mica_key_signatures_last_hour",
		"Signatures made with the key in the last full UTC hour.", []string{"key"}, nil)
	descKeyCurHour = prometheus.NewDesc("mica_key_signatures_current_hour",
		"Signatures made with the key so far in the current UTC hour (flushed counts).", []string{"key"}, nil)
	descUp = prometheus.NewDesc("mica_inventory_metrics_up",
		"1 when the last inventory metrics refresh succeeded, 0 when it failed (older values are served).", nil, nil)
)

// StoreCollector is a prometheus.Collector over the inventory.
type StoreCollector struct {
	src Source
	ttl time.Duration
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	fetched   time.Time // zero: never refreshed
	up        bool
	states    map[inventory.State]int64
	expiry    []inventory.IssuerTime
	crl       []inventory.IssuerTime
	lastEvent int64
	issued    map[string]int64 // by protocol
	revoked   map[string]int64 // by protocol
	denied    map[string]int64 // by action
	ocsp      []inventory.OCSPFreshness
	keys      []inventory.Key
	lastHour  map[string]int64 // key ID → signatures in the last full hour
	curHour   map[string]int64 // key ID → signatures in the current hour
}

// NewStoreCollector returns a collector over src whose query results serve
// scrapes for ttl (DefaultTTL when ttl <= 0). log may be nil.
func NewStoreCollector(src Source, ttl time.Duration, log *slog.Logger) *StoreCollector {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StoreCollector{src: src, ttl: ttl, log: log, now: time.Now,
		issued: map[string]int64{}, revoked: map[string]int64{}, denied: map[string]int64{}}
}

// Describe implements prometheus.Collector.
func (c *StoreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCerts, descIssued, descRevoked, descDenied, descExpiry, descCRLNext, descCRLFresh,
		descOCSPCount, descOCSPAge, descOCSPNext, descKeySigs, descKeyLastHour, descKeyCurHour, descUp} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it refreshes from the store when
// the cached results are older than the TTL, then emits them.
func (c *StoreCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.fetched.IsZero() || now.Sub(c.fetched) >= c.ttl {
		c.refresh(now)
	}
	up := 0.0
	if c.up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for _, st := range states {
		ch <- prometheus.MustNewConstMetric(descCerts, prometheus.GaugeValue, float64(c.states[st]), string(st))
	}
	for p, n := range c.issued {
		ch <- prometheus.MustNewConstMetric(descIssued, prometheus.CounterValue, float64(n), p)
	}
	for p, n := range c.revoked {
		ch <- prometheus.MustNewConstMetric(descRevoked, prometheus.CounterValue, float64(n), p)
	}
	for a, n := range c.denied {
		ch <- prometheus.MustNewConstMetric(descDenied, prometheus.CounterValue, float64(n), a)
	}
	for _, e := range c.expiry {
		ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, unix(e.Time), e.IssuerID)
	}
	for _, e := range c.crl {
		ch <- prometheus.MustNewConstMetric(descCRLNext, prometheus.GaugeValue, unix(e.Time), e.IssuerID)
		ch <- prometheus.MustNewConstMetric(descCRLFresh, prometheus.GaugeValue, e.Time.Sub(now).Seconds(), e.IssuerID)
	}
	for _, o := range c.ocsp {
		ch <- prometheus.MustNewConstMetric(descOCSPCount, prometheus.GaugeValue, float64(o.Responses), o.IssuerID)
		ch <- prometheus.MustNewConstMetric(descOCSPAge, prometheus.GaugeValue, now.Sub(o.OldestThisUpdate).Seconds(), o.IssuerID)
		ch <- prometheus.MustNewConstMetric(descOCSPNext, prometheus.GaugeValue, unix(o.EarliestNext), o.IssuerID)
	}
	for _, k := range c.keys {
		ch <- prometheus.MustNewConstMetric(descKeySigs, prometheus.CounterValue, float64(k.Signatures), k.ID, k.Class)
		ch <- prometheus.MustNewConstMetric(descKeyLastHour, prometheus.GaugeValue, float64(c.lastHour[k.ID]), k.ID)
		ch <- prometheus.MustNewConstMetric(descKeyCurHour, prometheus.GaugeValue, float64(c.curHour[k.ID]), k.ID)
	}
}

// refresh re-reads the store. On failure the previous values stay and up
// goes to 0; the counters' position in the audit log only advances when
// their query succeeded, so no event is counted twice or skipped.
func (c *StoreCollector) refresh(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	c.fetched = now
	c.up = false
	sc, err := c.src.CertificateStateCounts(ctx, now)
	if err != nil {
		c.log.Warn("metrics: inventory refresh failed", "err", err)
		return
	}
	exp, err := c.src.EarliestExpiry(ctx, now)
	if err != nil {
		c.log.Warn("metrics: inventory refresh failed", "err", err)
		return
	}
	crl, err := c.src.CRLNextUpdates(ctx)
	if err != nil {
		c.log.Warn("metrics: inventory refresh failed", "err", err)
		return
	}
	ocsp, err := c.src.OCSPFreshnessByIssuer(ctx)
	if err != nil {
		c.log.Warn("metrics: inventory refresh failed", "err", err)
		return
	}
	keys, err := c.src.Keys(ctx)
	if err != nil {
		c.log.Warn("metrics: inventory refresh failed", "err", err)
		return
	}
	cur := inventory.HourOf(now)
	hours, err := c.src.KeyUsageHours(ctx, cur.Add(-time.Hour))
	if err != nil {
		c.log.Warn("metrics: inventory refresh failed", "err", err)
		return
	}
	evs, last, err := c.src.EventCountsSince(ctx, c.lastEvent)
	if err != nil {
		c.log.Warn("metrics: inventory refresh failed", "err", err)
		return
	}
	c.ocsp, c.keys = ocsp, keys
	c.lastHour, c.curHour = map[string]int64{}, map[string]int64{}
	for _, h := range hours {
		switch {
		case h.Hour.Equal(cur):
			c.curHour[h.KeyID] += h.Signatures
		case h.Hour.Equal(cur.Add(-time.Hour)):
			c.lastHour[h.KeyID] += h.Signatures
		}
	}
	c.states = map[inventory.State]int64{}
	for _, s := range sc {
		c.states[s.State] += s.Count
	}
	c.expiry, c.crl = exp, crl
	for _, e := range evs {
		p := e.Protocol
		if p == "" {
			p = "unknown"
		}
		switch {
		case e.Outcome == "denied":
			c.denied[e.Action] += e.Count
		case e.Action == "cert.issue" && e.Outcome != "error":
			c.issued[p] += e.Count
		case e.Action == "cert.revoke" && e.Outcome != "error":
			c.revoked[p] += e.Count
		}
	}
	c.lastEvent = last
	c.up = true
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
