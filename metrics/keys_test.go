package metrics_test

import (
	"context"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
	"github.com/mica-pki/mica/metrics"
)

// TestStoreCollectorOCSPAndKeys: OCSP freshness per issuer and key usage
// per key, scraped from /metrics and parsed from the text format.
func TestStoreCollectorOCSPAndKeys(t *testing.T) {
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			inventorytest.Issuer(t, st, "iss-o")
			now := time.Date(2030, 5, 6, 14, 20, 0, 0, time.UTC)
			oldest := now.Add(-90 * time.Minute)
			for i, tu := range []time.Time{oldest, now.Add(-10 * time.Minute), now.Add(-5 * time.Minute)} {
				r := &inventory.OCSPResponse{IssuerID: "iss-o", Serial: inventorytest.RandomSerial(t), Status: "good",
					ThisUpdate: tu, NextUpdate: tu.Add(time.Duration(4+i) * time.Hour), DER: []byte("r")}
				if err := st.PutOCSPResponse(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			k := inventory.Key{ID: "issuing-x", Class: "issuing", Backend: "fake", URI: "fake:x", Algorithm: "EC-P256", IssuerID: "iss-o"}
			if err := st.PutKey(ctx, &k, inventory.Event{Actor: "test"}); err != nil {
				t.Fatal(err)
			}
			hour := inventory.HourOf(now)
			for _, u := range []inventory.KeyUsage{
				{URI: "fake:x", Signatures: 7, First: hour.Add(-3 * time.Hour), Last: hour.Add(-3 * time.Hour)}, // older: total only
				{URI: "fake:x", Signatures: 11, First: hour.Add(-50 * time.Minute), Last: hour.Add(-40 * time.Minute)},
				{URI: "fake:x", Signatures: 4, First: hour.Add(5 * time.Minute), Last: hour.Add(15 * time.Minute)},
			} {
				if err := st.RecordKeyUsage(ctx, []inventory.KeyUsage{u}); err != nil {
					t.Fatal(err)
				}
			}

			c := metrics.NewStoreCollector(st, time.Hour, nil)
			metrics.SetClock(c, func() time.Time { return now })
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			defer srv.Close()
			got := scrape(t, srv.URL+"/metrics")
			want := map[string]float64{
				`mica_ocsp_responses{issuer="iss-o"}`:                        3,
				`mica_ocsp_oldest_response_age_seconds{issuer="iss-o"}`:      5400,
				`mica_ocsp_next_update_timestamp_seconds{issuer="iss-o"}`:    float64(oldest.Add(4 * time.Hour).Unix()),
				`mica_key_signatures_total{class="issuing",key="issuing-x"}`: 22,
				`mica_key_signatures_last_hour{key="issuing-x"}`:             11,
				`mica_key_signatures_current_hour{key="issuing-x"}`:          4,
			}
			for k, v := range want {
				if g, ok := got[k]; !ok || math.Abs(g-v) > 0.001 {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}
		})
	}
}
