package inventory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
)

func TestScheduleValidation(t *testing.T) {
	t.Parallel()
	ok := inventory.Schedule{Kind: "scan", Spec: inventory.JobSpec{Targets: []string{"127.0.0.1"}, Ports: []int{443}}, Interval: time.Hour}
	for _, tc := range []struct {
		name string
		edit func(*inventory.Schedule)
		ok   bool
	}{
		{"valid", func(*inventory.Schedule) {}, true},
		{"files kind", func(s *inventory.Schedule) { s.Kind = "files" }, false},
		{"no targets", func(s *inventory.Schedule) { s.Spec.Targets = nil }, false},
		{"interval too short", func(s *inventory.Schedule) { s.Interval = 30 * time.Second }, false},
		{"interval too long", func(s *inventory.Schedule) { s.Interval = 400 * 24 * time.Hour }, false},
		{"fractional seconds", func(s *inventory.Schedule) { s.Interval = time.Hour + time.Millisecond }, false},
		{"bad port", func(s *inventory.Schedule) { s.Spec.Ports = []int{70000} }, false},
		{"NUL target", func(s *inventory.Schedule) { s.Spec.Targets = []string{"a\x00b"} }, false},
	} {
		sc := ok
		sc.Spec.Targets = append([]string(nil), ok.Spec.Targets...)
		tc.edit(&sc)
		err := inventory.ValidateSchedule(sc)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, inventory.ErrInvalid)) {
			t.Errorf("ValidateSchedule(%s) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestScheduleLifecycle(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		now := t0
		s.SetNow(func() time.Time { return now })
		sc, err := s.CreateSchedule(ctx, inventory.Schedule{Kind: "scan", Spec: inventory.JobSpec{Targets: []string{"127.0.0.1"}, Ports: []int{8443}},
			Interval: time.Hour, Enabled: true}, inventory.Event{Actor: "user:ada"})
		wantErr(t, err, nil)
		if !sc.NextRun.Equal(t0.Add(time.Hour)) || !sc.Enabled || sc.CreatedBy != "user:ada" {
			t.Fatalf("created %+v", sc)
		}
		if due, _ := s.DueSchedules(ctx, t0.Add(59*time.Minute)); len(due) != 0 {
			t.Errorf("due before its time: %+v", due)
		}
		// Three hours late: one job, next run on the interval grid after now.
		late := t0.Add(3*time.Hour + time.Minute)
		due, err := s.DueSchedules(ctx, late)
		wantErr(t, err, nil)
		if len(due) != 1 {
			t.Fatalf("due = %d, want 1", len(due))
		}
		job, err := s.EnqueueSchedule(ctx, due[0], late, nil)
		wantErr(t, err, nil)
		if job.State != inventory.JobQueued || job.CreatedBy != "schedule:1" || job.Kind != "scan" {
			t.Errorf("queued %+v", job)
		}
		_, err = s.EnqueueSchedule(ctx, due[0], late, nil) // stale read: already claimed
		wantErr(t, err, inventory.ErrConflict)
		got, _ := s.Schedule(ctx, sc.ID)
		if !got.NextRun.Equal(t0.Add(4*time.Hour)) || got.Runs != 1 || got.LastJobID != job.ID {
			t.Errorf("after run: %+v", got)
		}
		// An allow-list refusal at run time is claimed and recorded, not queued.
		due, _ = s.DueSchedules(ctx, t0.Add(4*time.Hour))
		job, err = s.EnqueueSchedule(ctx, due[0], t0.Add(4*time.Hour), errors.New("target not allowed"))
		wantErr(t, err, nil)
		if job != nil {
			t.Errorf("refused run queued %+v", job)
		}
		got, _ = s.Schedule(ctx, sc.ID)
		if got.LastError != "target not allowed" || got.Runs != 2 {
			t.Errorf("after refused run: %+v", got)
		}
		evs, _ := s.Events(ctx, inventory.EventFilter{Action: "discovery.schedule.run"})
		if len(evs) != 1 || evs[0].Outcome != "denied" {
			t.Errorf("refused run events = %+v", evs)
		}
		// Pause: never due. Resume: due one interval after resuming.
		now = t0.Add(10 * time.Hour)
		_, err = s.SetScheduleEnabled(ctx, sc.ID, false, inventory.Event{Actor: "user:ada"})
		wantErr(t, err, nil)
		if due, _ := s.DueSchedules(ctx, t0.Add(100*time.Hour)); len(due) != 0 {
			t.Errorf("paused schedule due: %+v", due)
		}
		got, err = s.SetScheduleEnabled(ctx, sc.ID, true, inventory.Event{Actor: "user:ada"})
		wantErr(t, err, nil)
		if !got.NextRun.Equal(now.Add(time.Hour)) {
			t.Errorf("resumed next run %v, want %v", got.NextRun, now.Add(time.Hour))
		}
		wantErr(t, s.DeleteSchedule(ctx, sc.ID, inventory.Event{Actor: "user:ada"}), nil)
		wantErr(t, s.DeleteSchedule(ctx, sc.ID, inventory.Event{Actor: "user:ada"}), inventory.ErrNotFound)
		for _, a := range []string{"discovery.schedule.create", "discovery.schedule.pause", "discovery.schedule.resume", "discovery.schedule.delete"} {
			if evs, _ := s.Events(ctx, inventory.EventFilter{Action: a}); len(evs) != 1 || evs[0].Actor != "user:ada" {
				t.Errorf("events %s = %+v", a, evs)
			}
		}
	})
}

// TestScheduleClaimRace: replicas that all read the same due schedule
// race to enqueue it; exactly one job results.
func TestScheduleClaimRace(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		s.SetNow(func() time.Time { return t0 })
		_, err := s.CreateSchedule(ctx, inventory.Schedule{Kind: "scan", Spec: inventory.JobSpec{Targets: []string{"127.0.0.1"}},
			Interval: time.Minute, Enabled: true}, inventory.Event{Actor: "test"})
		wantErr(t, err, nil)
		at := t0.Add(2 * time.Minute)
		due, err := s.DueSchedules(ctx, at)
		if err != nil || len(due) != 1 {
			t.Fatalf("due = %v, %v", due, err)
		}
		const racers = 8
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.EnqueueSchedule(ctx, due[0], at, nil)
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, inventory.ErrConflict):
				t.Errorf("racer error %v", err)
			}
		}
		jobs, _ := s.DiscoveryJobs(ctx, 0, 100)
		if won != 1 || len(jobs) != 1 {
			t.Errorf("%d racers won, %d jobs queued; want exactly 1", won, len(jobs))
		}
	})
}
