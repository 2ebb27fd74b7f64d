package metrics_test

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/metrics"
)

// scrape GETs /metrics from srv and returns "name{labels}" → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, b)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "mica_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestStoreCollectorScrape(t *testing.T) {
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			inventorytest.Issuer(t, st, "iss-a")
			now := time.Now().UTC().Truncate(time.Second)
			first := now.Add(48 * time.Hour)
			mk := func(notAfter time.Time) *inventory.Certificate {
				return inventorytest.Issue(t, st, inventory.Certificate{IssuerID: "iss-a", Serial: inventorytest.RandomSerial(t),
					CommonName: "x.test", NotBefore: now.Add(-72 * time.Hour), NotAfter: notAfter})
			}
			mk(first)
			mk(now.Add(90 * 24 * time.Hour))
			mk(now.Add(-time.Hour)) // expired
			rv := mk(now.Add(24 * time.Hour))
			if _, err := st.RevokeCertificate(ctx, "iss-a", rv.Serial, "keyCompromise", now, inventory.Event{Actor: "op", Protocol: "api"}); err != nil {
				t.Fatal(err)
			}
			for _, ev := range []inventory.Event{
				{Action: "cert.issue", Protocol: "acme", Outcome: "ok"},
				{Action: "cert.issue", Protocol: "acme", Outcome: "ok"},
				{Action: "cert.issue", Protocol: "est", Outcome: "ok"},
				{Action: "ui.login", Outcome: "denied"},
				{Action: "ui.login", Outcome: "denied"},
				{Action: "ui.login", Outcome: "ok"},
			} {
				ev.Actor = "test"
				if _, err := st.AppendEvent(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			crlNext := now.Add(2 * time.Hour)
			if _, err := st.PutCRL(ctx, &inventory.CRL{IssuerID: "iss-a", Number: 1, ThisUpdate: now, NextUpdate: crlNext, DER: []byte("crl")}); err != nil {
				t.Fatal(err)
			}

			c := metrics.NewStoreCollector(st, time.Hour, nil)
			clock := now
			metrics.SetClock(c, func() time.Time { return clock })
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			defer srv.Close()

			got := scrape(t, srv.URL+"/metrics")
			want := map[string]float64{
				`mica_inventory_metrics_up`:                                     1,
				`mica_certificates{state="issued"}`:                             2,
				`mica_certificates{state="expired"}`:                            1,
				`mica_certificates{state="revoked"}`:                            1,
				`mica_certificates{state="superseded"}`:                         0,
				`mica_certificates_issued_total{protocol="acme"}`:               2,
				`mica_certificates_issued_total{protocol="est"}`:                1,
				`mica_certificates_issued_total{protocol="unknown"}`:            4, // the fixtures' own issuance events
				`mica_certificates_revoked_total{protocol="api"}`:               1,
				`mica_denied_total{action="ui.login"}`:                          2,
				`mica_issuer_earliest_expiry_timestamp_seconds{issuer="iss-a"}`: float64(first.Unix()),
				`mica_crl_next_update_timestamp_seconds{issuer="iss-a"}`:        float64(crlNext.Unix()),
				`mica_crl_next_update_seconds{issuer="iss-a"}`:                  7200,
			}
			for k, v := range want {
				if g, ok := got[k]; !ok || math.Abs(g-v) > 0.001 {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}

			// Within the TTL the cached values are served; once it passes,
			// only new events are added to the counters.
			if _, err := st.AppendEvent(ctx, inventory.Event{Actor: "test", Action: "cert.issue", Protocol: "acme", Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
			if g := scrape(t, srv.URL+"/metrics")[`mica_certificates_issued_total{protocol="acme"}`]; g != 2 {
				t.Errorf("within the TTL acme issued = %v, want the cached 2", g)
			}
			clock = now.Add(2 * time.Hour)
			got = scrape(t, srv.URL+"/metrics")
			if g := got[`mica_certificates_issued_total{protocol="acme"}`]; g != 3 {
				t.Errorf("after the TTL acme issued = %v, want 3", g)
			}
			if g := got[`mica_denied_total{action="ui.login"}`]; g != 2 {
				t.Errorf("after the TTL denied = %v, want 2 (no double counting)", g)
			}
			if g := got[`mica_crl_next_update_seconds{issuer="iss-a"}`]; g != 0 {
				t.Errorf("CRL freshness at its nextUpdate = %v, want 0", g)
			}
		})
	}
}
