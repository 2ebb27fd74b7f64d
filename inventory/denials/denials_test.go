package denials_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/denials"
)

// fakeSink keeps appended events; fail makes the next appends fail.
type fakeSink struct {
	mu   sync.Mutex
	evs  []inventory.Event
	fail bool
}

var _ denials.Sink = (*fakeSink)(nil)

func (f *fakeSink) AppendEvent(_ context.Context, e inventory.Event) (inventory.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return inventory.Event{}, errors.New("database down")
	}
	f.evs = append(f.evs, e)
	return e, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type rec struct {
	at               time.Duration // since t0
	proto, src, kind string
	n                int
}

type want struct {
	proto, src string
	count      int64
	kinds      map[string]int64
}

func details(t *testing.T, e inventory.Event) denials.Details {
	t.Helper()
	var d denials.Details
	if err := json.Unmarshal(e.Details, &d); err != nil {
		t.Fatalf("details %s: %v", e.Details, err)
	}
	return d
}

func TestSummariser(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		max     int
		recs    []rec
		flushAt time.Duration // Flush (not Close) at this time
		want    []want
	}{
		{"one source, many denials, one event", 10,
			[]rec{{1 * time.Second, "api", "192.0.2.1", "api.bearer", 10000}},
			61 * time.Second,
			[]want{{"api", "192.0.2.1", 10000, map[string]int64{"api.bearer": 10000}}}},
		{"kinds counted apart", 10,
			[]rec{{0, "acme", "192.0.2.1", "acme.malformed", 3}, {2 * time.Second, "acme", "192.0.2.1", "acme.unauthorized", 2}},
			time.Minute,
			[]want{{"acme", "192.0.2.1", 5, map[string]int64{"acme.malformed": 3, "acme.unauthorized": 2}}}},
		{"open window not flushed", 10,
			[]rec{{0, "api", "192.0.2.1", "api.bearer", 1}},
			59 * time.Second,
			nil},
		{"one event per window", 10,
			[]rec{{0, "est", "192.0.2.1", "est.credentials", 4}, {70 * time.Second, "est", "192.0.2.1", "est.credentials", 6}},
			3 * time.Minute,
			[]want{{"est", "192.0.2.1", 4, map[string]int64{"est.credentials": 4}}, {"est", "192.0.2.1", 6, map[string]int64{"est.credentials": 6}}}},
		{"protocols apart", 10,
			[]rec{{0, "est", "192.0.2.1", "est.credentials", 1}, {0, "api", "192.0.2.1", "api.bearer", 1}},
			time.Minute,
			[]want{{"api", "192.0.2.1", 1, map[string]int64{"api.bearer": 1}}, {"est", "192.0.2.1", 1, map[string]int64{"est.credentials": 1}}}},
		{"sources past the bound go to other", 2,
			[]rec{{0, "api", "192.0.2.1", "api.bearer", 1}, {0, "api", "192.0.2.2", "api.bearer", 1},
				{0, "api", "192.0.2.3", "api.bearer", 5}, {0, "api", "192.0.2.4", "api.bearer", 7}, {0, "api", "192.0.2.1", "api.bearer", 1}},
			time.Minute,
			[]want{{"api", "192.0.2.1", 2, map[string]int64{"api.bearer": 2}}, {"api", "192.0.2.2", 1, map[string]int64{"api.bearer": 1}},
				{"api", denials.OtherSource, 12, map[string]int64{"api.bearer": 12}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, c := &fakeSink{}, &clock{t: t0}
			s := denials.New(sink, denials.Options{MaxSources: tc.max, Now: c.now})
			for _, r := range tc.recs {
				c.t = t0.Add(r.at)
				for range r.n {
					s.Record(r.proto, r.src, r.kind)
				}
			}
			c.t = t0.Add(tc.flushAt)
			if n := s.Flush(context.Background()); n != len(tc.want) {
				t.Fatalf("Flush() = %d events, want %d: %+v", n, len(tc.want), sink.evs)
			}
			got := map[[2]string]inventory.Event{}
			for _, e := range sink.evs {
				got[[2]string{e.Protocol, e.Source}] = e
			}
			for i, w := range tc.want {
				e := sink.evs[i]
				if len(tc.want) > 1 && tc.name != "one event per window" {
					e = got[[2]string{w.proto, w.src}]
				}
				d := details(t, e)
				if e.Action != inventory.ActionDeniedSummary || e.Outcome != "denied" || e.Protocol != w.proto || e.Source != w.src {
					t.Errorf("event %d = %s/%s/%s/%s, want %s/denied/%s/%s", i, e.Action, e.Outcome, e.Protocol, e.Source, inventory.ActionDeniedSummary, w.proto, w.src)
				}
				if d.Count != w.count || fmt.Sprint(d.Kinds) != fmt.Sprint(w.kinds) || d.WindowSeconds != 60 || d.LastSeen.Before(d.FirstSeen) {
					t.Errorf("event %d details = %+v, want count %d kinds %v", i, d, w.count, w.kinds)
				}
			}
		})
	}
}

// Close writes the open window (shutdown) and a refused write is kept for
// the next flush, not lost.
func TestSummariserCloseAndRetry(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 10, 0, time.UTC)
	sink, c := &fakeSink{}, &clock{t: t0}
	s := denials.New(sink, denials.Options{Now: c.now})
	s.Record("api", "192.0.2.1", "api.bearer")
	sink.fail = true
	if n := s.Close(context.Background()); n != 0 {
		t.Fatalf("Close() with a failing sink = %d, want 0", n)
	}
	sink.fail = false
	s.Record("api", "192.0.2.1", "api.bearer")
	if n := s.Close(context.Background()); n != 2 || len(sink.evs) != 2 {
		t.Fatalf("Close() after recovery = %d (%d events), want the kept one and the new one", n, len(sink.evs))
	}
	first := details(t, sink.evs[0])
	if first.Count != 1 || !first.WindowStart.Equal(t0.Truncate(time.Minute)) || !first.FirstSeen.Equal(t0) {
		t.Errorf("kept summary = %+v", first)
	}
}

// 10,000 concurrent denials from 50 sources: Record is safe for
// concurrent use and every denial is counted once.
func TestSummariserConcurrent(t *testing.T) {
	sink := &fakeSink{}
	s := denials.New(sink, denials.Options{MaxSources: 20})
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				s.Record("api", fmt.Sprintf("192.0.2.%d", g), "api.bearer")
			}
		}()
	}
	wg.Wait()
	s.Close(context.Background())
	var total int64
	for _, e := range sink.evs {
		total += details(t, e).Count
	}
	if total != 10000 || len(sink.evs) > 21*2 {
		t.Errorf("%d events counting %d denials, want ≤ 42 events counting 10000", len(sink.evs), total)
	}
}
