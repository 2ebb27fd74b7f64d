package alerts_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/alerts"
	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// receiver is a webhook endpoint on 127.0.0.1 that verifies signatures,
// fails the first delivery with 503 and records the alerts it accepted.
type receiver struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	calls  int
	got    []alerts.Alert
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if !alerts.Verify(rc.secret, body, r.Header.Get(alerts.HeaderSignature)) {
		rc.t.Errorf("bad signature %q", r.Header.Get(alerts.HeaderSignature))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var a alerts.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		rc.t.Errorf("bad body: %v", err)
	}
	if ts := r.Header.Get(alerts.HeaderTimestamp); ts != strconv.FormatInt(a.SentAt, 10) {
		rc.t.Errorf("timestamp header %q, body sent_at %d", ts, a.SentAt)
	}
	if rc.calls == 1 {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	rc.got = append(rc.got, a)
}

func (rc *receiver) take() map[string]alerts.Alert {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]alerts.Alert{}
	for _, a := range rc.got {
		if _, dup := out[a.Kind]; dup {
			rc.t.Errorf("two %s alerts in one evaluation", a.Kind)
		}
		out[a.Kind] = a
	}
	rc.got = nil
	return out
}

func subjects(a alerts.Alert) map[string]bool {
	m := map[string]bool{}
	for _, it := range a.Items {
		m[it.Subject] = true
	}
	return m
}

func TestWebhookAlerts(t *testing.T) {
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	inventorytest.Issuer(t, st, "iss")
	now := time.Now().UTC().Truncate(time.Second)
	issue := func(notBefore, notAfter time.Time) string {
		c := inventorytest.Issue(t, st, inventory.Certificate{IssuerID: "iss", Serial: inventorytest.RandomSerial(t),
			CommonName: "svc.test", NotBefore: notBefore, NotAfter: notAfter})
		return "cert:iss/" + c.Serial
	}
	renewal := issue(now.Add(-80*24*time.Hour), now.Add(10*24*time.Hour)) // 90 days, 10 left: renewal window, not yet expiring
	expA := issue(now.Add(-23*time.Hour), now.Add(time.Hour))             // 24 h certificates about to expire
	expB := issue(now.Add(-23*time.Hour), now.Add(time.Hour))
	issue(now.Add(-time.Hour), now.Add(23*time.Hour))           // fresh 24 h certificate: nothing to say
	issue(now.Add(-10*24*time.Hour), now.Add(355*24*time.Hour)) // a year left
	for range 3 {
		if _, err := st.AppendEvent(ctx, inventory.Event{Actor: "user:x", Action: "ui.login", Source: "203.0.113.9", Outcome: "denied"}); err != nil {
			t.Fatal(err)
		}
	}

	rc := &receiver{t: t, secret: []byte("s3cret-webhook-key")}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	eng := alerts.New(alerts.Config{Webhooks: []alerts.Webhook{{URL: srv.URL, Secret: rc.secret}},
		DeniedBurst: 3, Backoff: time.Millisecond}, st, nil)

	sent, err := eng.Evaluate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := rc.take()
	if len(sent) != 3 || len(got) != 3 {
		t.Fatalf("first evaluation sent %d, receiver accepted %d (%v); want expiring, renewal_due, auth_failures", len(sent), len(got), got)
	}
	if rc.calls != 4 {
		t.Errorf("receiver saw %d requests, want 4 (the first failed and was retried)", rc.calls)
	}
	if a := got[alerts.KindExpiring]; a.Count != 2 || !subjects(a)[expA] || !subjects(a)[expB] {
		t.Errorf("expiring alert = %+v, want both 24 h certificates in one alert", a)
	}
	if a := got[alerts.KindRenewalDue]; a.Count != 1 || !subjects(a)[renewal] {
		t.Errorf("renewal alert = %+v, want %s", a, renewal)
	}
	if a := got[alerts.KindAuthFailures]; a.Count != 1 || !subjects(a)["source:203.0.113.9"] {
		t.Errorf("auth failure alert = %+v", a)
	}

	// Nothing new: nothing sent.
	if sent, err := eng.Evaluate(ctx); err != nil || len(sent) != 0 {
		t.Fatalf("second evaluation sent %v, %v; want nothing", sent, err)
	}
	if got := rc.take(); len(got) != 0 {
		t.Errorf("receiver got duplicates: %v", got)
	}

	// A new expiring certificate is sent alone.
	expC := issue(now.Add(-23*time.Hour), now.Add(30*time.Minute))
	if _, err := eng.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	got = rc.take()
	if a, ok := got[alerts.KindExpiring]; len(got) != 1 || !ok || a.Count != 1 || !subjects(a)[expC] {
		t.Errorf("third evaluation = %v, want only %s", got, expC)
	}
}

// TestWebhookNoRetryOn4xx: a receiver rejecting the alert with 400 gets it
// once, and the findings stay unsent for the next evaluation.
func TestWebhookNoRetryOn4xx(t *testing.T) {
	ctx := context.Background()
	st := inventorytest.SQLite(t)
	for range 2 {
		if _, err := st.AppendEvent(ctx, inventory.Event{Actor: "a", Action: "api.auth", Source: "198.51.100.1", Outcome: "denied"}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	eng := alerts.New(alerts.Config{Webhooks: []alerts.Webhook{{URL: srv.URL, Secret: []byte("k")}}, DeniedBurst: 2, Backoff: time.Millisecond}, st, nil)
	for i := 1; i <= 2; i++ {
		if _, err := eng.Evaluate(ctx); err == nil {
			t.Fatal("a rejected delivery reported no error")
		}
		mu.Lock()
		if calls != i {
			t.Errorf("after evaluation %d the receiver saw %d requests, want %d", i, calls, i)
		}
		mu.Unlock()
	}
}
