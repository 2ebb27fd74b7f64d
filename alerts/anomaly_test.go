package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// hmacReceiver is a webhook on 127.0.0.1 that accepts only deliveries
// whose HMAC verifies and records them.
type hmacReceiver struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	got    []alerts.Alert
}

func (rc *hmacReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !alerts.Verify(rc.secret, body, r.Header.Get(alerts.HeaderSignature)) {
		rc.t.Errorf("delivery with a bad signature: %s", body)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var a alerts.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		rc.t.Errorf("bad body %s: %v", body, err)
	}
	rc.mu.Lock()
	rc.got = append(rc.got, a)
	rc.mu.Unlock()
}

func (rc *hmacReceiver) take() []alerts.Alert {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	g := rc.got
	rc.got = nil
	return g
}

// anomalyFixture writes history into a store relative to now.
type anomalyFixture struct {
	t   *testing.T
	st  *inventory.Store
	now time.Time
	n   int
}

// enroll appends a successful issuance ago before now.
func (f *anomalyFixture) enroll(ago time.Duration, requester, source, profile string) string {
	f.t.Helper()
	f.n++
	object := fmt.Sprintf("cert:iss/%04x", f.n)
	details, _ := json.Marshal(map[string]string{"profile": profile})
	if _, err := f.st.AppendEvent(context.Background(), inventory.Event{Time: f.now.Add(-ago), Actor: requester, Action: "cert.issue",
		Protocol: "est", Source: source, Object: object, Outcome: "ok", Details: details}); err != nil {
		f.t.Fatal(err)
	}
	return object
}

// sign records n signatures of key k1 in the hour starting hoursAgo full
// hours before now's hour, at minute min of it.
func (f *anomalyFixture) sign(hoursAgo int, minute int, n int64) {
	f.t.Helper()
	at := inventory.HourOf(f.now).Add(-time.Duration(hoursAgo)*time.Hour + time.Duration(minute)*time.Minute)
	if err := f.st.RecordKeyUsage(context.Background(), []inventory.KeyUsage{{URI: "fake:k1", Signatures: n, First: at, Last: at}}); err != nil {
		f.t.Fatal(err)
	}
}

func window(t *testing.T, hours, days, tz string) alerts.Window {
	t.Helper()
	w, err := alerts.ParseWindow(hours, days, tz)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestAnomalyAlerts: each anomaly kind fires on its condition and stays
// quiet on a quiet baseline, inside allowed hours and from known
// networks; deliveries verify; a second evaluation sends nothing new; and
// every delivered alert left one alert.send audit event.
func TestAnomalyAlerts(t *testing.T) {
	// Tuesday 2030-01-08 02:30 UTC is 03:30 in Berlin; 10:30 UTC is 11:30.
	night := time.Date(2030, 1, 8, 2, 30, 0, 0, time.UTC)
	day := time.Date(2030, 1, 8, 10, 30, 0, 0, time.UTC)
	const d = 24 * time.Hour
	cases := []struct {
		name  string
		now   time.Time
		cfg   func(t *testing.T, a *alerts.AnomalyConfig)
		setup func(f *anomalyFixture) map[string][]string // kind → subjects expected
		// detail substrings expected in the first item of a kind
		details map[string][]string
	}{
		{name: "enrollment at night fires", now: night,
			cfg: func(t *testing.T, a *alerts.AnomalyConfig) {
				a.EnrollmentHours = map[string]alerts.Window{"device": window(t, "08-18", "mon-fri", "Europe/Berlin")}
			},
			setup: func(f *anomalyFixture) map[string][]string {
				return map[string][]string{alerts.KindEnrollmentHours: {f.enroll(10*time.Minute, "dev-1", "", "device")}}
			},
			details: map[string][]string{alerts.KindEnrollmentHours: {"03:20 CET", "08-18 mon-fri Europe/Berlin", `"dev-1"`}}},
		{name: "enrollment in allowed hours is quiet", now: day,
			cfg: func(t *testing.T, a *alerts.AnomalyConfig) {
				a.EnrollmentHours = map[string]alerts.Window{"device": window(t, "08-18", "mon-fri", "Europe/Berlin")}
			},
			setup: func(f *anomalyFixture) map[string][]string {
				f.enroll(10*time.Minute, "dev-1", "", "device")
				return nil
			}},
		{name: "enrollment of an unrestricted profile at night is quiet", now: night,
			cfg: func(t *testing.T, a *alerts.AnomalyConfig) {
				a.EnrollmentHours = map[string]alerts.Window{"device": window(t, "08-18", "", "")}
			},
			setup: func(f *anomalyFixture) map[string][]string {
				f.enroll(10*time.Minute, "svc-1", "", "server")
				return nil
			}},
		{name: "requester from a new network fires", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				f.enroll(3*d, "dev-1", "192.0.2.10", "device")
				f.enroll(2*d, "dev-1", "192.0.2.11", "device")
				f.enroll(5*time.Minute, "dev-1", "203.0.113.7", "device")
				f.enroll(4*time.Minute, "dev-1", "203.0.113.8", "device")
				return map[string][]string{alerts.KindEnrollmentNetwork: {"net:device/dev-1/203.0.113.0/24"}}
			},
			details: map[string][]string{alerts.KindEnrollmentNetwork: {"enrolled 2 time(s)", "203.0.113.0/24", "192.0.2.0/24", "30d"}}},
		{name: "requester from its usual network is quiet", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				f.enroll(3*d, "dev-1", "192.0.2.10", "device")
				f.enroll(5*time.Minute, "dev-1", "192.0.2.99", "device")
				return nil
			}},
		{name: "known network is quiet", now: day,
			cfg: func(t *testing.T, a *alerts.AnomalyConfig) {
				a.KnownNetworks = map[string][]netip.Prefix{"device": {netip.MustParsePrefix("203.0.113.0/24")}}
			},
			setup: func(f *anomalyFixture) map[string][]string {
				f.enroll(3*d, "dev-1", "192.0.2.10", "device")
				f.enroll(5*time.Minute, "dev-1", "203.0.113.7", "device")
				return nil
			}},
		{name: "no baseline yet is quiet", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				f.enroll(5*time.Minute, "dev-1", "203.0.113.7", "device")
				return nil
			}},
		{name: "new requester falls back to the profile's networks", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				f.enroll(3*d, "dev-1", "192.0.2.10", "device")
				f.enroll(5*time.Minute, "dev-9", "192.0.2.50", "device")       // usual for the profile
				f.enroll(4*time.Minute, "dev-8", "2001:db8:aa:1::5", "device") // never seen
				return map[string][]string{alerts.KindEnrollmentNetwork: {"net:device/dev-8/2001:db8:aa::/48"}}
			},
			details: map[string][]string{alerts.KindEnrollmentNetwork: {`profile "device"`}}},
		{name: "key burst fires", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				for h := 2; h <= 25; h++ {
					f.sign(h, 10, 10)
				}
				f.sign(1, 5, 500)
				return map[string][]string{alerts.KindKeyBurst: {"key:k1@" + inventory.HourOf(f.now).Add(-time.Hour).Format(time.RFC3339)}}
			},
			details: map[string][]string{alerts.KindKeyBurst: {"key k1 made 500 signatures", "mean 10.0/hour", "threshold 100"}}},
		{name: "key burst in the current hour fires", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				for h := 2; h <= 25; h++ {
					f.sign(h, 10, 40)
				}
				f.sign(0, 1, 201)
				return map[string][]string{alerts.KindKeyBurst: {"key:k1@" + inventory.HourOf(f.now).Format(time.RFC3339)}}
			},
			details: map[string][]string{alerts.KindKeyBurst: {"current (partial) hour", "threshold 200"}}},
		{name: "key usage below the floor is quiet", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				for h := 2; h <= 25; h++ {
					f.sign(h, 10, 10)
				}
				f.sign(1, 5, 90)
				return nil
			}},
		{name: "key signing at night fires", now: night,
			cfg: func(t *testing.T, a *alerts.AnomalyConfig) {
				a.KeyHours = map[string]alerts.Window{"k1": window(t, "08-18", "mon-fri", "Europe/Berlin")}
				a.OffHoursAllowance = 5
			},
			setup: func(f *anomalyFixture) map[string][]string {
				f.sign(1, 20, 20)
				return map[string][]string{alerts.KindKeyOffHours: {"key:k1@" + inventory.HourOf(f.now).Add(-time.Hour).Format(time.RFC3339)}}
			},
			details: map[string][]string{alerts.KindKeyOffHours: {"key k1 made 20 signatures", "allowance 5"}}},
		{name: "key hours inherited from every profile fire", now: night,
			cfg: func(t *testing.T, a *alerts.AnomalyConfig) {
				a.Profiles = []string{"device", "server"}
				a.EnrollmentHours = map[string]alerts.Window{"*": window(t, "07-19", "", "Europe/Berlin")}
			},
			setup: func(f *anomalyFixture) map[string][]string {
				f.sign(0, 10, 3)
				return map[string][]string{alerts.KindKeyOffHours: {"key:k1@" + inventory.HourOf(f.now).Format(time.RFC3339)}}
			}},
		{name: "night signing within the allowance is quiet", now: night,
			cfg: func(t *testing.T, a *alerts.AnomalyConfig) {
				a.KeyHours = map[string]alerts.Window{"k1": window(t, "08-18", "mon-fri", "Europe/Berlin")}
				a.OffHoursAllowance = 50
			},
			setup: func(f *anomalyFixture) map[string][]string {
				f.sign(1, 20, 20)
				return nil
			}},
		{name: "day signing is quiet", now: day,
			cfg: func(t *testing.T, a *alerts.AnomalyConfig) {
				a.KeyHours = map[string]alerts.Window{"k1": window(t, "08-18", "mon-fri", "Europe/Berlin")}
			},
			setup: func(f *anomalyFixture) map[string][]string {
				f.sign(1, 20, 20)
				return nil
			}},
		{name: "key requests from new networks fire", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				for i := range 5 {
					f.enroll(time.Duration(2+i)*d, fmt.Sprintf("svc-%d", i), fmt.Sprintf("192.0.2.%d", 10+i), "")
				}
				f.enroll(50*time.Minute, "svc-0", "192.0.2.10", "")
				f.enroll(40*time.Minute, "svc-1", "192.0.2.11", "")
				for i := range 4 {
					f.enroll(time.Duration(30-i)*time.Minute, fmt.Sprintf("svc-%d", i), fmt.Sprintf("198.51.%d.9", 100+i), "")
				}
				return map[string][]string{
					alerts.KindKeyNetworks: {"key:k1@" + inventory.HourOf(f.now).Format(time.RFC3339)},
					alerts.KindEnrollmentNetwork: {"net:/svc-0/198.51.100.0/24", "net:/svc-1/198.51.101.0/24",
						"net:/svc-2/198.51.102.0/24", "net:/svc-3/198.51.103.0/24"},
				}
			},
			details: map[string][]string{alerts.KindKeyNetworks: {"4 of 6 requests (67%)", "4 network(s) not seen", "baseline has 1 network(s)"}}},
		{name: "key requests from the usual networks are quiet", now: day,
			setup: func(f *anomalyFixture) map[string][]string {
				f.enroll(3*d, "svc-0", "192.0.2.10", "")
				for i := range 8 {
					f.enroll(time.Duration(50-i)*time.Minute, "svc-0", fmt.Sprintf("192.0.2.%d", 20+i), "")
				}
				f.enroll(5*time.Minute, "svc-0", "198.51.100.9", "") // one of nine: under the share
				return map[string][]string{alerts.KindEnrollmentNetwork: {"net:/svc-0/198.51.100.0/24"}}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for name, st := range inventorytest.Stores(t) {
				t.Run(name, func(t *testing.T) {
					ctx := context.Background()
					k := inventory.Key{ID: "k1", Class: "issuing", Backend: "fake", URI: "fake:k1", Algorithm: "EC-P256", IssuerID: "iss"}
					if err := st.PutKey(ctx, &k, inventory.Event{Actor: "test"}); err != nil {
						t.Fatal(err)
					}
					f := &anomalyFixture{t: t, st: st, now: tc.now}
					want := tc.setup(f)

					rc := &hmacReceiver{t: t, secret: []byte("anomaly-secret")}
					srv := httptest.NewServer(rc)
					defer srv.Close()
					cfg := alerts.Config{Webhooks: []alerts.Webhook{{URL: srv.URL, Secret: rc.secret}}, Backoff: time.Millisecond}
					if tc.cfg != nil {
						tc.cfg(t, &cfg.Anomaly)
					}
					eng := alerts.New(cfg, st, nil)
					alerts.SetClock(eng, func() time.Time { return tc.now })

					if _, err := eng.Evaluate(ctx); err != nil {
						t.Fatal(err)
					}
					got := map[string][]string{}
					gotAlerts := map[string]alerts.Alert{}
					for _, a := range rc.take() {
						for _, it := range a.Items {
							got[a.Kind] = append(got[a.Kind], it.Subject)
						}
						gotAlerts[a.Kind] = a
					}
					for kind := range got {
						sort.Strings(got[kind])
					}
					for kind := range want {
						sort.Strings(want[kind])
					}
					if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
						t.Fatalf("delivered %v, want %v", got, want)
					}
					for kind, a := range gotAlerts {
						if strings.HasPrefix(kind, "key_") && (len(a.Items) == 0 || a.Items[0].KeyID != "k1" || a.Items[0].IssuerID != "iss") {
							t.Errorf("%s items = %+v, want key k1 of issuer iss named", kind, a.Items)
						}
					}
					for kind, subs := range tc.details {
						a := gotAlerts[kind]
						for _, s := range subs {
							if len(a.Items) == 0 || !strings.Contains(a.Items[0].Detail, s) {
								t.Errorf("%s detail = %q, want it to contain %q", kind, a.Items, s)
							}
						}
					}
					evs, err := st.Events(ctx, inventory.EventFilter{Action: "alert.send"})
					if err != nil {
						t.Fatal(err)
					}
					if len(evs) != len(want) {
						t.Errorf("%d alert.send audit events, want %d (one per delivered alert)", len(evs), len(want))
					}

					// The same anomalies evaluated again: nothing new is sent.
					if sent, err := eng.Evaluate(ctx); err != nil || len(sent) != 0 {
						t.Errorf("second evaluation sent %+v, %v; want nothing", sent, err)
					}
					if again := rc.take(); len(again) != 0 {
						t.Errorf("receiver got duplicates: %+v", again)
					}
				})
			}
		})
	}
}

// TestParseWindow: hour ranges (wrapping past midnight), weekday ranges
// and time zones; bad settings are ErrBadWindow.
func TestParseWindow(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	cases := []struct {
		hours, days, tz string
		at              time.Time
		want            bool
	}{
		{"08-18", "mon-fri", "Europe/Berlin", time.Date(2030, 1, 8, 8, 0, 0, 0, berlin), true},
		{"08-18", "mon-fri", "Europe/Berlin", time.Date(2030, 1, 8, 17, 59, 0, 0, berlin), true},
		{"08-18", "mon-fri", "Europe/Berlin", time.Date(2030, 1, 8, 18, 0, 0, 0, berlin), false},
		{"08-18", "mon-fri", "Europe/Berlin", time.Date(2030, 1, 8, 7, 30, 0, 0, time.UTC), true}, // 08:30 in Berlin
		{"08-18", "mon-fri", "Europe/Berlin", time.Date(2030, 1, 12, 10, 0, 0, 0, berlin), false}, // Saturday
		{"22-06", "", "", time.Date(2030, 1, 8, 23, 0, 0, 0, time.UTC), true},
		{"22-06", "", "", time.Date(2030, 1, 8, 5, 59, 0, 0, time.UTC), true},
		{"22-06", "", "", time.Date(2030, 1, 8, 6, 0, 0, 0, time.UTC), false},
		{"", "sat,sun", "", time.Date(2030, 1, 13, 3, 0, 0, 0, time.UTC), true},
		{"", "fri-mon", "", time.Date(2030, 1, 8, 3, 0, 0, 0, time.UTC), false}, // Tuesday
		{"09,13-14", "*", "UTC", time.Date(2030, 1, 8, 13, 30, 0, 0, time.UTC), true},
		{"09,13-14", "*", "UTC", time.Date(2030, 1, 8, 10, 0, 0, 0, time.UTC), false},
	}
	for _, c := range cases {
		w, err := alerts.ParseWindow(c.hours, c.days, c.tz)
		if err != nil {
			t.Fatalf("ParseWindow(%q, %q, %q): %v", c.hours, c.days, c.tz, err)
		}
		if got := w.Allows(c.at); got != c.want {
			t.Errorf("ParseWindow(%q, %q, %q).Allows(%s) = %v, want %v", c.hours, c.days, c.tz, c.at, got, c.want)
		}
	}
	for _, bad := range [][3]string{{"8-25", "", ""}, {"x", "", ""}, {"", "monday-fri", ""}, {"", "", "Mars/Olympus"}} {
		if _, err := alerts.ParseWindow(bad[0], bad[1], bad[2]); err == nil || !strings.Contains(err.Error(), "bad time window") {
			t.Errorf("ParseWindow(%q) = %v, want ErrBadWindow", bad, err)
		}
	}
}
