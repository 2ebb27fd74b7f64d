package inventory_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestRecordKeyUsageHourly: concurrent flushes (replicas) into the same
// hourly bucket sum exactly on both databases, the bucket's first/last
// widen, the lifetime counters move with them in the same transaction,
// a usage spanning two hours is refused whole, and pruning drops only old
// hours.
func TestRecordKeyUsageHourly(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		for _, id := range []string{"k1", "k2"} {
			k := inventory.Key{ID: id, Class: "issuing", Backend: "softkms", URI: "softkms:name=" + id, Algorithm: "EC-P256"}
			wantErr(t, s.PutKey(ctx, &k, inventory.Event{Actor: "test"}), nil)
		}
		h := t0.Truncate(time.Hour)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at := h.Add(time.Duration(i+1) * time.Minute)
				err := s.RecordKeyUsage(ctx, []inventory.KeyUsage{
					{URI: "softkms:name=k1", Signatures: 3, First: at, Last: at.Add(time.Second)},
					{URI: "softkms:name=k2", Signatures: 1, First: at, Last: at},
					{URI: "softkms:name=k1", Signatures: 2, First: at.Add(time.Hour), Last: at.Add(time.Hour)},
					{URI: "softkms:name=unknown", Signatures: 9, First: at, Last: at},
				})
				if err != nil {
					t.Errorf("RecordKeyUsage: %v", err)
				}
			}()
		}
		wg.Wait()

		got, err := s.KeyUsageHours(ctx, h)
		wantErr(t, err, nil)
		want := []inventory.KeyHour{
			{KeyID: "k1", Hour: h, Signatures: 24, First: h.Add(time.Minute), Last: h.Add(8*time.Minute + time.Second)},
			{KeyID: "k1", Hour: h.Add(time.Hour), Signatures: 16, First: h.Add(time.Hour + time.Minute), Last: h.Add(time.Hour + 8*time.Minute)},
			{KeyID: "k2", Hour: h, Signatures: 8, First: h.Add(time.Minute), Last: h.Add(8 * time.Minute)},
		}
		if len(got) != len(want) {
			t.Fatalf("KeyUsageHours = %+v, want %+v", got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.KeyID != w.KeyID || !g.Hour.Equal(w.Hour) || g.Signatures != w.Signatures || !g.First.Equal(w.First) || !g.Last.Equal(w.Last) {
				t.Errorf("bucket %d = %+v, want %+v", i, g, w)
			}
		}
		k1, err := s.Key(ctx, "k1")
		wantErr(t, err, nil)
		if k1.Signatures != 40 || k1.LastUsed == nil || !k1.LastUsed.Equal(h.Add(time.Hour+8*time.Minute)) {
			t.Errorf("k1 lifetime = %d signatures, last used %v; want 40 and the last bucket's last", k1.Signatures, k1.LastUsed)
		}

		// A usage across an hour boundary is refused and nothing of the
		// batch is written.
		err = s.RecordKeyUsage(ctx, []inventory.KeyUsage{
			{URI: "softkms:name=k2", Signatures: 5, First: h, Last: h},
			{URI: "softkms:name=k2", Signatures: 1, First: h.Add(59 * time.Minute), Last: h.Add(61 * time.Minute)},
		})
		wantErr(t, err, inventory.ErrInvalid)
		if k2, _ := s.Key(ctx, "k2"); k2.Signatures != 8 {
			t.Errorf("after a refused batch k2 has %d signatures, want 8", k2.Signatures)
		}

		n, err := s.PruneKeyUsageHours(ctx, h.Add(time.Hour))
		wantErr(t, err, nil)
		if n != 2 {
			t.Errorf("pruned %d buckets, want the 2 of the first hour", n)
		}
		if got, _ := s.KeyUsageHours(ctx, h.Add(-24*time.Hour)); len(got) != 1 || !got[0].Hour.Equal(h.Add(time.Hour)) {
			t.Errorf("after pruning = %+v, want only k1's second hour", got)
		}
	})
}

// TestEnrollmentsAndSources: successful issuance events come back with
// profile and issuer parsed; denied ones and other actions do not; the
// baseline query groups by issuer, requester, source and profile and
// tolerates events without JSON details.
func TestEnrollmentsAndSources(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		add := func(at time.Time, action, actor, source, object, outcome, profile string) {
			var details json.RawMessage
			if profile != "" {
				details, _ = json.Marshal(map[string]string{"profile": profile})
			}
			_, err := s.AppendEvent(ctx, inventory.Event{Time: at, Actor: actor, Action: action, Protocol: "est", Source: source,
				Object: object, Outcome: outcome, Details: details})
			wantErr(t, err, nil)
		}
		add(t0.Add(-48*time.Hour), "cert.issue", "dev-1", "192.0.2.10", "cert:iss/01", "ok", "device")
		add(t0.Add(-47*time.Hour), "cert.issue", "dev-1", "192.0.2.10", "cert:iss/02", "ok", "device")
		add(t0.Add(-46*time.Hour), "cert.issue", "dev-1", "192.0.2.11", "cert:iss/03", "ok", "device")
		add(t0.Add(-45*time.Hour), "cert.issue", "dev-2", "198.51.100.1", "cert:other/04", "ok", "")
		add(t0.Add(-44*time.Hour), "cert.issue", "dev-3", "203.0.113.1", "profile:device", "denied", "device")
		add(t0.Add(-43*time.Hour), "ui.login", "dev-3", "203.0.113.1", "", "ok", "")
		add(t0.Add(-10*time.Minute), "cert.issue", "dev-1", "203.0.113.7", "cert:iss/05", "ok", "device")

		src, err := s.EnrollmentSources(ctx, t0.Add(-72*time.Hour), t0.Add(-time.Hour))
		wantErr(t, err, nil)
		want := map[inventory.EnrollmentSource]bool{
			{IssuerID: "iss", Requester: "dev-1", Source: "192.0.2.10", Profile: "device"}: true,
			{IssuerID: "iss", Requester: "dev-1", Source: "192.0.2.11", Profile: "device"}: true,
			{IssuerID: "other", Requester: "dev-2", Source: "198.51.100.1", Profile: ""}:   true,
		}
		if len(src) != len(want) {
			t.Fatalf("EnrollmentSources = %+v, want %v", src, want)
		}
		for _, g := range src {
			if !want[g] {
				t.Errorf("unexpected source %+v", g)
			}
		}

		en, err := s.Enrollments(ctx, t0.Add(-time.Hour), t0, 0)
		wantErr(t, err, nil)
		if len(en) != 1 || en[0].Requester != "dev-1" || en[0].Profile != "device" || en[0].IssuerID != "iss" ||
			en[0].Source != "203.0.113.7" || en[0].Protocol != "est" || !en[0].At.Equal(t0.Add(-10*time.Minute)) {
			t.Errorf("Enrollments = %+v, want the one recent issuance", en)
		}
		if all, _ := s.Enrollments(ctx, t0.Add(-72*time.Hour), t0, 2); len(all) != 2 || all[0].Object != "cert:iss/01" {
			t.Errorf("Enrollments with limit 2 = %+v, want the two oldest", all)
		}
	})
}

// TestOCSPFreshnessAndAlertEvent: the OCSP freshness aggregate per issuer,
// and MarkAlertsSentEvent recording state and the audit event together.
func TestOCSPFreshnessAndAlertEvent(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		inventorytest.Issuer(t, s, "iss")
		for i, tu := range []time.Time{t0.Add(-3 * time.Hour), t0.Add(-time.Hour)} {
			r := &inventory.OCSPResponse{IssuerID: "iss", Serial: inventorytest.RandomSerial(t), Status: "good",
				ThisUpdate: tu, NextUpdate: tu.Add(time.Duration(10+i) * time.Hour), DER: []byte("resp")}
			wantErr(t, s.PutOCSPResponse(ctx, r), nil)
		}
		f, err := s.OCSPFreshnessByIssuer(ctx)
		wantErr(t, err, nil)
		if len(f) != 1 || f[0].IssuerID != "iss" || f[0].Responses != 2 || !f[0].OldestThisUpdate.Equal(t0.Add(-3*time.Hour)) ||
			!f[0].EarliestNext.Equal(t0.Add(7*time.Hour)) {
			t.Errorf("OCSPFreshnessByIssuer = %+v", f)
		}

		wantErr(t, s.MarkAlertsSentEvent(ctx, "key_burst", []string{"key:k1@x"}, t0, t0.Add(-24*time.Hour),
			inventory.Event{Details: json.RawMessage(`{"count":1}`)}), nil)
		seen, err := s.AlertsSentSince(ctx, "key_burst", []string{"key:k1@x", "key:k2@x"}, t0.Add(-time.Minute))
		wantErr(t, err, nil)
		if !seen["key:k1@x"] || seen["key:k2@x"] {
			t.Errorf("AlertsSentSince = %v", seen)
		}
		evs, err := s.Events(ctx, inventory.EventFilter{Action: "alert.send"})
		wantErr(t, err, nil)
		if len(evs) != 1 || evs[0].Object != "alert:key_burst" || evs[0].Actor != "system" || !evs[0].Time.Equal(t0) {
			t.Errorf("alert.send events = %+v, want one for key_burst", evs)
		}
	})
}
