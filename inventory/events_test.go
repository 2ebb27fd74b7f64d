package inventory_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
)

func TestAppendEvent(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		at := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
		e1, err := s.AppendEvent(ctx, inventory.Event{Time: at, Actor: "alice", Action: "ca.init", Protocol: "cli",
			Source: "host1", Object: "issuer:root", Details: json.RawMessage(` { "b" : 1, "a" : [ 1, 2 ] } `)})
		if err != nil {
			t.Fatal(err)
		}
		if e1.ID == 0 || e1.PrevHash != "" || len(e1.Hash) != 64 || e1.Outcome != "ok" {
			t.Fatalf("first event = %+v", e1)
		}
		if want := at.UTC().Truncate(time.Microsecond); !e1.Time.Equal(want) || e1.Time.Location() != time.UTC {
			t.Fatalf("Time = %v, want %v", e1.Time, want)
		}
		if string(e1.Details) != `{"b":1,"a":[1,2]}` { // compacted, key order kept
			t.Fatalf("Details = %s", e1.Details)
		}
		e2, err := s.AppendEvent(ctx, inventory.Event{Actor: "bob", Action: "key.sign", Outcome: "denied",
			Source: "bad\x00bytes\xff"}) // client-controlled junk is cleaned, not refused
		if err != nil {
			t.Fatal(err)
		}
		if e2.PrevHash != e1.Hash || e2.ID <= e1.ID || e2.Time.IsZero() || e2.Details != nil {
			t.Fatalf("second event = %+v", e2)
		}
		got, err := s.Events(ctx, inventory.EventFilter{})
		if err != nil || len(got) != 2 {
			t.Fatalf("Events = %v, %v", got, err)
		}
		// Read back exactly as returned by AppendEvent (times survive the round trip).
		for i, want := range []inventory.Event{e2, e1} {
			g := got[i]
			if g.ID != want.ID || !g.Time.Equal(want.Time) || g.Actor != want.Actor || g.Action != want.Action ||
				g.Source != want.Source || g.Outcome != want.Outcome || string(g.Details) != string(want.Details) ||
				g.Hash != want.Hash || g.PrevHash != want.PrevHash {
				t.Errorf("read back %d:\n got %+v\nwant %+v", i, g, want)
			}
		}
		if strings.ContainsRune(got[0].Source, 0) {
			t.Errorf("NUL stored: %q", got[0].Source)
		}

		_, err = s.AppendEvent(ctx, inventory.Event{Actor: "x"})
		wantErr(t, err, inventory.ErrInvalid) // no action
		_, err = s.AppendEvent(ctx, inventory.Event{Action: "x", Details: json.RawMessage(`{nope`)})
		wantErr(t, err, inventory.ErrInvalid)
		if n, err := s.VerifyEvents(ctx); err != nil || n != 2 {
			t.Fatalf("VerifyEvents = %d, %v", n, err)
		}
	})
}

// The canonical encoding is a compatibility promise: a chain written today
// must verify with every later MICA (and with an external verifier).
func TestEventHashKnownAnswer(t *testing.T) {
	canon := `{"v":1,"time":"2030-01-02T03:04:05.123456Z","actor":"alice","action":"cert.issue","protocol":"acme",` +
		`"source":"192.0.2.7","object":"cert:ca/ab","outcome":"ok","details":"{\"a\":\"<b>\"}"}`
	prev := strings.Repeat("0", 64)
	sum := sha256.Sum256([]byte(prev + canon))
	want := hex.EncodeToString(sum[:])

	s := inventoryStore(t)
	ctx := context.Background()
	// Give the chain a head whose hash is prev by using a raw head update
	// on a fresh store (triggers do not guard the head's UPDATE).
	if err := rawExec(t, s, `UPDATE event_chain_head SET hash = ? WHERE id = 1`, prev); err != nil {
		t.Fatal(err)
	}
	e, err := s.AppendEvent(ctx, inventory.Event{
		Time: time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC), Actor: "alice", Action: "cert.issue",
		Protocol: "acme", Source: "192.0.2.7", Object: "cert:ca/ab", Details: json.RawMessage(`{"a": "<b>"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.Hash != want {
		t.Fatalf("hash = %s, want %s (canonical encoding changed?)", e.Hash, want)
	}
}

func TestEventsFilter(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, e := range []inventory.Event{
			{Action: "cert.issue", Actor: "alice", Object: "cert:ca/1"},
			{Action: "cert.revoke", Actor: "bob", Object: "cert:ca/1"},
			{Action: "certx.other", Actor: "alice", Object: "cert:ca/2"},
			{Action: "key.sign", Actor: "system", Object: "issuer:ca"},
			{Action: "cert_issue", Actor: "mallory", Object: "cert:ca/3"}, // '_' must not act as a wildcard
		} {
			e.Time = base.Add(time.Duration(i) * time.Hour)
			if _, err := s.AppendEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		actions := func(es []inventory.Event) string {
			var a []string
			for _, e := range es {
				a = append(a, e.Action)
			}
			return strings.Join(a, ",")
		}
		for _, tt := range []struct {
			f    inventory.EventFilter
			want string
		}{
			{inventory.EventFilter{}, "cert_issue,key.sign,certx.other,cert.revoke,cert.issue"},
			{inventory.EventFilter{Action: "cert."}, "cert.revoke,cert.issue"},
			{inventory.EventFilter{Action: "cert.issue"}, "cert.issue"},
			{inventory.EventFilter{Actor: "alice"}, "certx.other,cert.issue"},
			{inventory.EventFilter{Object: "cert:ca/1"}, "cert.revoke,cert.issue"},
			{inventory.EventFilter{Since: base.Add(2 * time.Hour)}, "cert_issue,key.sign,certx.other"},
			{inventory.EventFilter{Limit: 2}, "cert_issue,key.sign"},
			{inventory.EventFilter{Action: "nothing."}, ""},
		} {
			got, err := s.Events(ctx, tt.f)
			if err != nil || actions(got) != tt.want {
				t.Errorf("Events(%+v) = %s, %v; want %s", tt.f, actions(got), err, tt.want)
			}
		}
		// Keyset paging.
		page1, _ := s.Events(ctx, inventory.EventFilter{Limit: 3})
		page2, _ := s.Events(ctx, inventory.EventFilter{Limit: 3, Before: page1[2].ID})
		if actions(page2) != "cert.revoke,cert.issue" {
			t.Errorf("page 2 = %s", actions(page2))
		}
	})
}

// The database itself refuses to change history, whatever the caller.
func TestEventsAppendOnly(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		e, err := s.AppendEvent(ctx, inventory.Event{Action: "cert.issue", Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		stmts := []string{
			`UPDATE events SET actor = 'mallory' WHERE id = ?`,
			`DELETE FROM events WHERE id = ?`,
			`DELETE FROM events WHERE id > ? OR 1 = 1`,
			`DELETE FROM event_chain_head WHERE id = 1 AND 0 < ?`,
		}
		if s.Dialect() == "postgres" {
			stmts = append(stmts, `TRUNCATE events`, `TRUNCATE event_chain_head`)
		}
		for _, q := range stmts {
			var err error
			if strings.Contains(q, "?") {
				err = rawExec(t, s, q, e.ID)
			} else {
				err = rawExec(t, s, q)
			}
			if err == nil || !strings.Contains(err.Error(), "append-only") && !strings.Contains(err.Error(), "cannot be deleted") {
				t.Errorf("%s: err = %v, want a trigger error", q, err)
			}
		}
		if n, err := s.VerifyEvents(ctx); err != nil || n != 1 {
			t.Fatalf("VerifyEvents = %d, %v", n, err)
		}
	})
}

// dropAuditTriggers removes the append-only protection, as an attacker
// with DDL rights could, so the hash chain is the remaining defence.
func dropAuditTriggers(t *testing.T, s *inventory.Store) {
	t.Helper()
	stmts := []string{`DROP TRIGGER events_no_update`, `DROP TRIGGER events_no_delete`}
	if s.Dialect() == "postgres" {
		stmts = []string{`DROP TRIGGER events_append_only ON events`}
	}
	for _, q := range stmts {
		if err := rawExec(t, s, q); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyEventsDetectsTampering(t *testing.T) {
	tamper := []struct {
		name    string
		sql     string
		wantID  int // index (1-based) of the event the error must name
		headErr bool
	}{
		{name: "edit actor", sql: `UPDATE events SET actor = 'mallory' WHERE id = ?`, wantID: 3},
		{name: "edit details", sql: `UPDATE events SET details = '{"n":99}' WHERE id = ?`, wantID: 3},
		{name: "edit time", sql: `UPDATE events SET at = (SELECT at FROM events WHERE id = 1) WHERE id = ?`, wantID: 3},
		{name: "rehash one row", sql: `UPDATE events SET actor = 'mallory', hash = (SELECT hash FROM events WHERE id = 1) WHERE id = ?`, wantID: 3},
		{name: "delete middle", sql: `DELETE FROM events WHERE id = ?`, wantID: 4},
		{name: "delete tail", sql: `DELETE FROM events WHERE id >= ? + 2`, headErr: true},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, s *inventory.Store) {
				ctx := context.Background()
				var ids []int64
				for i := 0; i < 5; i++ {
					e, err := s.AppendEvent(ctx, inventory.Event{Action: "test.step", Actor: "alice", Details: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, e.ID)
				}
				if n, err := s.VerifyEvents(ctx); err != nil || n != 5 {
					t.Fatalf("before tampering: %d, %v", n, err)
				}
				dropAuditTriggers(t, s)
				q := strings.ReplaceAll(tt.sql, "id = 1", fmt.Sprintf("id = %d", ids[0]))
				if err := rawExec(t, s, q, ids[2]); err != nil {
					t.Fatal(err)
				}
				_, err := s.VerifyEvents(ctx)
				if !errors.Is(err, inventory.ErrTampered) {
					t.Fatalf("VerifyEvents after %s: %v", tt.name, err)
				}
				if tt.headErr {
					if !strings.Contains(err.Error(), "head") {
						t.Errorf("error %q does not mention the head", err)
					}
				} else if want := fmt.Sprintf("event %d ", ids[tt.wantID-1]); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			})
		})
	}
}

// Concurrent appenders (goroutines here, replicas in production) must
// leave one linear chain: no fork, no duplicate prev_hash.
func TestConcurrentAppendsKeepChain(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		const workers, each = 20, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := s.AppendEvent(ctx, inventory.Event{Action: "test.concurrent", Actor: fmt.Sprintf("w%d", w)}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		n, err := s.VerifyEvents(ctx)
		if err != nil || n != workers*each {
			t.Fatalf("VerifyEvents = %d, %v; want %d", n, err, workers*each)
		}
		all, _ := s.Events(ctx, inventory.EventFilter{Limit: 1000})
		prev := map[string]bool{}
		for _, e := range all {
			if prev[e.PrevHash] {
				t.Fatalf("chain forked at prev_hash %s", e.PrevHash)
			}
			prev[e.PrevHash] = true
		}
	})
}

// VerifyEvents pages through long logs; with a batch of 7 a short chain
// crosses many page boundaries, including one exactly at the end.
func TestVerifyEventsPaging(t *testing.T) {
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		s.SetVerifyBatch(7)
		const total = 49
		for i := 0; i < total; i++ {
			if _, err := s.AppendEvent(ctx, inventory.Event{Action: "test.bulk"}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.VerifyEvents(ctx); err != nil || n != total {
			t.Fatalf("VerifyEvents = %d, %v", n, err)
		}
		if _, err := s.AppendEvent(ctx, inventory.Event{Action: "test.bulk"}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.VerifyEvents(ctx); err != nil || n != total+1 {
			t.Fatalf("VerifyEvents = %d, %v", n, err)
		}
		// Tampering on a later page is still found.
		dropAuditTriggers(t, s)
		if err := rawExec(t, s, `UPDATE events SET action = 'x' WHERE id = (SELECT MAX(id) FROM events) - 3`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyEvents(ctx); !errors.Is(err, inventory.ErrTampered) {
			t.Fatalf("VerifyEvents after tampering: %v", err)
		}
	})
}
